"""Loading one bot from JSONL or CSV: what is accepted, and every way a file is refused."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from fleetserve.bots.loader import load_bot, load_bot_with_report, parse_bot
from fleetserve.bots.rows import BotFormat
from fleetserve.errors import BotInputError

GOOD_ROWS = [
    {"text": "hi there", "intent": "greet"},
    {"text": "hello", "intent": "greet"},
    {"text": "bye", "intent": "leave"},
    {"text": "see you later", "intent": "leave"},
]


def jsonl(*records: object) -> bytes:
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    return b"\n".join(lines) + b"\n"


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def refused(path: Path, **kwargs: str) -> BotInputError:
    with pytest.raises(BotInputError) as caught:
        load_bot(path, **kwargs)
    return caught.value


# --- accepted ---------------------------------------------------------------------------


def test_a_jsonl_bot_loads_with_its_out_of_scope_examples(tmp_path: Path) -> None:
    path = write(
        tmp_path, "demo.jsonl", jsonl(*GOOD_ROWS, {"text": "tell a joke", "out_of_scope": True})
    )
    loaded = load_bot_with_report(path, source="upload")
    bot = loaded.definition
    assert bot.bot_id == "demo"
    assert bot.language == "en"
    assert bot.source == "upload"
    assert bot.intents() == ("greet", "leave")
    assert bot.out_of_scope == ("tell a joke",)
    assert loaded.report.rows == 5
    assert loaded.report.utterances == 4
    assert loaded.report.intents == 2
    assert loaded.report.duplicates_dropped == 0


def test_whitespace_is_normalized_and_text_otherwise_kept(tmp_path: Path) -> None:
    rows = [{"text": "  Hi\tThere!  ", "intent": " greet "}, *GOOD_ROWS[1:]]
    bot = load_bot(write(tmp_path, "demo.jsonl", jsonl(*rows)))
    assert bot.utterances[0].text == "Hi There!"
    assert bot.utterances[0].intent == "greet"


def test_duplicates_with_the_same_label_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS, {"text": "hello", "intent": "greet"}, {"text": "HELLO ", "intent": "greet"}]
    loaded = load_bot_with_report(write(tmp_path, "demo.jsonl", jsonl(*rows)))
    assert loaded.report.duplicates_dropped == 2
    assert [u.text for u in loaded.definition.utterances].count("hello") == 1


def test_blank_lines_and_extra_keys_are_ignored(tmp_path: Path) -> None:
    data = jsonl(GOOD_ROWS[0], b"", {**GOOD_ROWS[1], "domain": "x"}, b"   ", *GOOD_ROWS[2:])
    assert len(load_bot(write(tmp_path, "demo.jsonl", data)).utterances) == 4


def test_hangul_makes_a_korean_bot_unless_a_hint_says_otherwise(tmp_path: Path) -> None:
    rows = [
        {"text": "안녕", "intent": "greet"},
        {"text": "안녕하세요", "intent": "greet"},
        {"text": "잘 가", "intent": "leave"},
        {"text": "bye", "intent": "leave"},
    ]
    path = write(tmp_path, "ko-demo.jsonl", jsonl(*rows))
    assert load_bot(path).language == "ko"
    assert load_bot(path, language="en").language == "en"


def test_a_csv_bot_loads_with_empty_intents_as_out_of_scope(tmp_path: Path) -> None:
    csv = (
        "\ufeffText,Intent,note\n"
        "hi there,greet,x\n"
        '"hello, you",greet,\n'
        'bye,leave,"multi\nline note"\n'
        "see you,leave,\n"
        "\n"
        "what is the weather,,\n"
    )
    loaded = load_bot_with_report(write(tmp_path, "shop.csv", csv))
    assert loaded.definition.intents() == ("greet", "leave")
    assert loaded.definition.utterances[1].text == "hello, you"
    assert loaded.definition.out_of_scope == ("what is the weather",)
    assert loaded.report.rows == 5


def test_parse_bot_is_pure_over_bytes() -> None:
    loaded = parse_bot(jsonl(*GOOD_ROWS), BotFormat.JSONL, name="<memory>", bot_id="mem")
    assert loaded.definition.bot_id == "mem"
    assert loaded.report.name == "<memory>"


def test_the_same_content_hashes_the_same_from_csv_and_jsonl(tmp_path: Path) -> None:
    from_jsonl = load_bot(write(tmp_path, "demo.jsonl", jsonl(*GOOD_ROWS)))
    csv = "text,intent\n" + "".join(f"{r['text']},{r['intent']}\n" for r in reversed(GOOD_ROWS))
    from_csv = load_bot(write(tmp_path, "demo.csv", csv))
    assert from_csv.content_hash() == from_jsonl.content_hash()


# --- refused ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.jsonl", b""),
        ("blank.jsonl", b"\n  \n\n"),
        ("empty.csv", b""),
        ("header-only.csv", b"text,intent\n"),
    ],
)
def test_an_empty_file_is_refused(tmp_path: Path, name: str, data: bytes) -> None:
    error = refused(write(tmp_path, name, data))
    assert error.reason == "empty_file"
    assert name in str(error)


@pytest.mark.parametrize("name", ["latin1.jsonl", "latin1.csv"])
def test_non_utf8_bytes_are_refused_with_their_line(tmp_path: Path, name: str) -> None:
    head = jsonl(*GOOD_ROWS[:2]) if name.endswith(".jsonl") else b"text,intent\nhi,greet\n"
    error = refused(write(tmp_path, name, head + "caf\u00e9,greet\n".encode("latin-1")))
    assert error.reason == "not_utf8"
    assert f"{name}:3:" in str(error)
    assert "0xe9" in str(error)


@pytest.mark.parametrize("name", ["My Bot.jsonl", "bot.v2.csv", "-x.jsonl"])
def test_a_file_stem_that_is_not_a_valid_bot_id_is_refused(tmp_path: Path, name: str) -> None:
    error = refused(write(tmp_path, name, jsonl(*GOOD_ROWS)))
    assert error.reason == "invalid_bot_id"
    assert name in str(error)


def test_an_explicit_invalid_bot_id_is_refused(tmp_path: Path) -> None:
    error = refused(write(tmp_path, "fine.jsonl", jsonl(*GOOD_ROWS)), bot_id="Bad Id")
    assert error.reason == "invalid_bot_id"


def test_an_invalid_language_hint_is_refused(tmp_path: Path) -> None:
    error = refused(write(tmp_path, "fine.jsonl", jsonl(*GOOD_ROWS)), language="English")
    assert error.reason == "invalid_language"


@pytest.mark.parametrize(
    ("bad_line", "detail"),
    [
        (b"{not json", "not valid JSON"),
        (b'["hi", "greet"]', "expected a JSON object, got list"),
        (b'{"intent": "greet"}', "'text' is missing"),
        (b'{"text": 42, "intent": "greet"}', "'text' must be a string"),
        (b'{"text": "   ", "intent": "greet"}', "'text' is empty"),
        (b'{"text": "hey"}', "'intent' must be a non-empty string"),
        (b'{"text": "hey", "intent": ["greet"]}', "'intent' must be a non-empty string"),
        (b'{"text": "hey", "intent": "greet", "out_of_scope": "yes"}', "'out_of_scope' must be"),
        (b'{"text": "hey", "intent": "greet", "out_of_scope": true}', "must not have an 'intent'"),
    ],
)
def test_a_malformed_jsonl_row_is_refused_with_its_line(
    tmp_path: Path, bad_line: bytes, detail: str
) -> None:
    error = refused(write(tmp_path, "demo.jsonl", jsonl(GOOD_ROWS[0], b"", bad_line, *GOOD_ROWS)))
    assert error.reason == "malformed_row"
    assert "demo.jsonl:3: " in str(error)
    assert detail in str(error)


def test_every_malformed_line_is_named(tmp_path: Path) -> None:
    data = jsonl(*GOOD_ROWS, b"{", b"{", b"[]", b"{", b"{", b"{", b"{")
    message = str(refused(write(tmp_path, "demo.jsonl", data)))
    assert message.startswith(f"{tmp_path / 'demo.jsonl'}:5: ")
    assert "also malformed: line 6, 7, 8, 9 and 2 more" in message


@pytest.mark.parametrize(
    ("csv", "line", "detail"),
    [
        ("words,label\nhi,greet\n", 1, "expected a header 'text,intent'"),
        ("text,intent,text\nhi,greet,x\n", 1, "expected a header"),
        ("text,intent\nhi,greet\nhello,greet,extra\n", 3, "expected 2 fields, got 3"),
        ("text,intent\nhi,greet\n  ,greet\n", 3, "'text' is empty"),
        ('text,intent\nhi,greet\n"unterminated,greet\n', 3, "expected 2 fields, got 1"),
    ],
)
def test_a_malformed_csv_row_is_refused_with_its_line(
    tmp_path: Path, csv: str, line: int, detail: str
) -> None:
    error = refused(write(tmp_path, "demo.csv", csv))
    assert error.reason == "malformed_row"
    assert f"demo.csv:{line}: " in str(error)
    assert detail in str(error)


def test_intents_with_a_single_utterance_are_named(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS, {"text": "thanks", "intent": "thank"}, {"text": "help", "intent": "aid"}]
    error = refused(write(tmp_path, "demo.jsonl", jsonl(*rows)))
    assert error.reason == "single_utterance_intent"
    assert "'aid' (line 6)" in str(error)
    assert "'thank' (line 5)" in str(error)


def test_a_duplicate_does_not_count_as_a_second_utterance(tmp_path: Path) -> None:
    rows = [
        *GOOD_ROWS,
        {"text": "thanks", "intent": "thank"},
        {"text": "Thanks", "intent": "thank"},
    ]
    assert refused(write(tmp_path, "demo.jsonl", jsonl(*rows))).reason == "single_utterance_intent"


def test_conflicting_labels_fail_the_bot_under_the_fail_policy(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS, {"text": "Hello", "intent": "leave"}]
    path = write(tmp_path, "demo.jsonl", jsonl(*rows))
    with pytest.raises(BotInputError) as raised:
        load_bot_with_report(path, conflicts="fail")
    error = raised.value
    assert error.reason == "conflicting_labels"
    message = str(error)
    assert "demo.jsonl:5:" in message
    assert "line 2 'hello' is 'greet' but line 5 'Hello' is 'leave'" in message


def test_by_default_the_majority_label_wins_and_the_conflict_is_reported(tmp_path: Path) -> None:
    rows = [
        *GOOD_ROWS,
        {"text": "Hello", "intent": "leave"},
        {"text": "HELLO", "intent": "greet"},
    ]
    loaded = load_bot_with_report(write(tmp_path, "demo.jsonl", jsonl(*rows)))
    (conflict,) = loaded.report.conflicts
    assert conflict.labels == ("greet", "leave", "greet")
    assert conflict.lines == (2, 5, 6)
    assert conflict.kept == "greet"
    assert loaded.report.conflict_policy == "majority"
    texts = {u.text: u.intent for u in loaded.definition.utterances}
    assert texts["hello"] == "greet"
    assert "Hello" not in texts
    assert "HELLO" not in texts


@pytest.mark.parametrize(
    ("policy", "kept"), [("majority", None), ("first", "greet"), ("drop", None)]
)
def test_a_tie_or_the_drop_policy_drops_the_text_and_first_keeps_the_first(
    tmp_path: Path, policy: str, kept: str | None
) -> None:
    rows = [*GOOD_ROWS, {"text": "thanks", "intent": "greet"}, {"text": "Hello", "intent": "leave"}]
    loaded = load_bot_with_report(
        write(tmp_path, "demo.jsonl", jsonl(*rows)),
        conflicts=policy,  # type: ignore[arg-type]
    )
    (conflict,) = loaded.report.conflicts
    assert conflict.kept == kept
    labels = [u.intent for u in loaded.definition.utterances if u.text.lower() == "hello"]
    assert labels == ([kept] if kept else [])


def test_an_utterance_also_given_as_out_of_scope_conflicts(tmp_path: Path) -> None:
    csv = "text,intent\nhi,greet\nhello,greet\nbye,leave\nciao,leave\nbye,\nbye bye,leave\n"
    path = write(tmp_path, "demo.csv", csv)
    with pytest.raises(BotInputError) as raised:
        load_bot_with_report(path, conflicts="fail")
    assert raised.value.reason == "conflicting_labels"
    assert "'leave' but line 6 'bye' is 'out_of_scope'" in str(raised.value)
    (conflict,) = load_bot_with_report(path, conflicts="first").report.conflicts
    assert conflict.labels == ("leave", "out_of_scope")
    assert conflict.kept == "leave"


@pytest.mark.parametrize(
    "rows",
    [
        GOOD_ROWS[:2],
        [{"text": "a", "out_of_scope": True}, {"text": "b", "out_of_scope": True}],
    ],
)
def test_fewer_than_two_intents_are_refused(tmp_path: Path, rows: list[object]) -> None:
    error = refused(write(tmp_path, "demo.jsonl", jsonl(*rows)))
    assert error.reason == "too_few_intents"
    assert "demo.jsonl" in str(error)


def test_an_unknown_suffix_is_refused(tmp_path: Path) -> None:
    assert refused(write(tmp_path, "demo.txt", "hi")).reason == "unsupported_format"


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    assert refused(tmp_path / "gone.jsonl").reason == "missing_file"


@pytest.mark.parametrize("name", ["crlf.jsonl", "crlf.csv"])
def test_windows_line_endings_load(tmp_path: Path, name: str) -> None:
    if name.endswith(".jsonl"):
        data = jsonl(*GOOD_ROWS).replace(b"\n", b"\r\n")
    else:
        data = b"text,intent\r\n" + b"".join(
            f"{r['text']},{r['intent']}\r\n".encode() for r in GOOD_ROWS
        )
    bot = load_bot(write(tmp_path, name, data))
    assert [u.text for u in bot.utterances] == [r["text"] for r in GOOD_ROWS]
