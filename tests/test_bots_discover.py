"""Finding bots under a path: one file, a folder, or a fleet; one bad bot never stops the rest."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from fleetserve.bots.discover import discover_bots, find_bots
from fleetserve.errors import BotInputError

GOOD = b'{"text":"hi","intent":"greet"}\n{"text":"hello","intent":"greet"}\n' + (
    b'{"text":"bye","intent":"leave"}\n{"text":"ciao","intent":"leave"}\n'
)
GOOD_CSV = b"text,intent\nhi,greet\nhello,greet\nbye,leave\nciao,leave\n"


def index(folder: Path, bots: list[dict[str, str]], **extra: object) -> None:
    document = {"version": 1, "seed": 3, "bots": bots, **extra}
    (folder / "fleet.json").write_bytes(orjson.dumps(document))


def outcomes(path: Path) -> dict[str, str]:
    return {r.bot_id: (r.error.reason if r.error else "ok") for r in discover_bots(path)}


def test_a_single_file_is_one_bot(tmp_path: Path) -> None:
    (tmp_path / "solo.csv").write_bytes(GOOD_CSV)
    [result] = discover_bots(tmp_path / "solo.csv")
    assert result.ok
    assert result.loaded is not None
    assert result.loaded.definition.bot_id == "solo"


def test_a_folder_loads_every_bot_file_and_goes_past_failures(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(GOOD)
    (tmp_path / "b.jsonl").write_bytes(b"")
    (tmp_path / "c.csv").write_bytes(GOOD_CSV)
    (tmp_path / "d.jsonl").write_bytes(b"{oops\n")
    (tmp_path / "Bad Name.jsonl").write_bytes(GOOD)
    (tmp_path / "notes.txt").write_text("not a bot")
    (tmp_path / ".a.jsonl").write_text("an editor backup")
    assert outcomes(tmp_path) == {
        "Bad Name": "invalid_bot_id",
        "a": "ok",
        "b": "empty_file",
        "c": "ok",
        "d": "malformed_row",
    }


def test_two_files_claiming_one_id_fail_the_second(tmp_path: Path) -> None:
    (tmp_path / "same.csv").write_bytes(GOOD_CSV)
    (tmp_path / "same.jsonl").write_bytes(GOOD)
    results = list(discover_bots(tmp_path))
    assert [r.path.name for r in results] == ["same.csv", "same.jsonl"]
    assert results[0].ok
    assert results[1].error is not None
    assert results[1].error.reason == "duplicate_bot_id"


def test_a_fleet_index_names_ids_languages_and_sources(tmp_path: Path) -> None:
    (tmp_path / "one.jsonl").write_bytes(GOOD)
    (tmp_path / "stray.jsonl").write_bytes(b"")  # not in the index: ignored
    index(
        tmp_path,
        [
            {"bot_id": "bot-1", "language": "xx", "file": "one.jsonl", "source": "s1"},
            {"bot_id": "bot-2", "language": "", "file": "missing.jsonl", "source": ""},
            {"bot_id": "bot-1", "language": "en", "file": "one.jsonl", "source": ""},
        ],
    )
    results = list(discover_bots(tmp_path))
    assert [r.bot_id for r in results] == ["bot-1", "bot-2", "bot-1"]
    assert results[0].loaded is not None
    assert results[0].loaded.definition.language == "xx"
    assert results[0].loaded.definition.source == "s1"
    assert [r.error.reason for r in results[1:] if r.error] == ["missing_file", "duplicate_bot_id"]


def test_the_index_file_itself_means_its_fleet(tmp_path: Path) -> None:
    (tmp_path / "one.jsonl").write_bytes(GOOD)
    index(tmp_path, [{"bot_id": "one", "language": "en", "file": "one.jsonl"}])
    assert outcomes(tmp_path / "fleet.json") == {"one": "ok"}


@pytest.mark.parametrize(
    "document",
    [
        b"{not json",
        b"[]",
        b'{"version": 2, "bots": []}',
        b'{"version": 1, "bots": {}}',
        b'{"version": 1, "seed": "x", "bots": []}',
        b'{"version": 1, "bots": ["one.jsonl"]}',
        b'{"version": 1, "bots": [{"bot_id": "a"}]}',
        b'{"version": 1, "bots": [{"bot_id": "a", "file": 7}]}',
        b'{"version": 1, "bots": [{"bot_id": "a", "file": "../outside.jsonl"}]}',
        b'{"version": 1, "bots": [{"bot_id": "a", "file": "/etc/passwd"}]}',
    ],
)
def test_a_broken_index_fails_the_whole_fleet_up_front(tmp_path: Path, document: bytes) -> None:
    (tmp_path / "fleet.json").write_bytes(document)
    with pytest.raises(BotInputError) as caught:
        discover_bots(tmp_path)
    assert caught.value.reason == "bad_fleet_index"
    assert "fleet.json" in str(caught.value)


def test_path_level_problems_raise_before_any_bot_loads(tmp_path: Path) -> None:
    with pytest.raises(BotInputError) as missing:
        discover_bots(tmp_path / "nowhere")
    assert missing.value.reason == "not_found"
    (tmp_path / "readme.md").write_text("no bots here")
    with pytest.raises(BotInputError) as empty:
        discover_bots(tmp_path)
    assert empty.value.reason == "no_bots"


def test_finding_reads_no_bot_and_loading_is_lazy(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(GOOD)
    (tmp_path / "b.jsonl").write_bytes(GOOD)
    assert [s.bot_id for s in find_bots(tmp_path)] == ["a", "b"]
    results = discover_bots(tmp_path)
    (tmp_path / "b.jsonl").write_bytes(b"")  # changed after discovery, before loading
    assert [r.ok for r in results] == [True, False]
