"""Bot definitions: ids, intents, the content hash and the text rules behind them."""

from __future__ import annotations

import pytest

from fleetserve.bots.definition import BotDefinition, Utterance, validate_bot_id
from fleetserve.bots.text import detect_language, match_key, normalize_text
from fleetserve.errors import BotInputError, Disposition


def bot(**changes: object) -> BotDefinition:
    fields: dict[str, object] = {
        "bot_id": "demo",
        "language": "en",
        "utterances": (
            Utterance("hi there", "greet"),
            Utterance("hello", "greet"),
            Utterance("bye", "leave"),
            Utterance("see you", "leave"),
        ),
        "out_of_scope": ("what is the weather",),
        "source": "user",
    }
    fields.update(changes)
    return BotDefinition(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bot_id", ["a", "0", "clinc-banking", "en-00042-7f3a", "ko_bot-1", "a" * 64]
)
def test_valid_bot_ids_pass(bot_id: str) -> None:
    assert validate_bot_id(bot_id) == bot_id


@pytest.mark.parametrize(
    "bot_id", ["", "A", "MyBot", "-a", "_a", "a.b", "a b", "a/b", "a" * 65, "a\n", "봇"]
)
def test_invalid_bot_ids_are_refused_with_a_stable_reason(bot_id: str) -> None:
    with pytest.raises(BotInputError) as caught:
        validate_bot_id(bot_id)
    assert caught.value.reason == "invalid_bot_id"
    assert repr(bot_id) in str(caught.value)
    assert caught.value.disposition is Disposition.DEAD_LETTER


def test_a_definition_cannot_hold_an_invalid_id() -> None:
    with pytest.raises(BotInputError, match="invalid"):
        bot(bot_id="Not Valid")


def test_intents_are_distinct_and_sorted() -> None:
    assert bot().intents() == ("greet", "leave")


def test_content_hash_is_sha256_hex_and_stable() -> None:
    digest = bot().content_hash()
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert bot().content_hash() == digest


def test_content_hash_ignores_source_and_example_order() -> None:
    original = bot()
    reordered = bot(
        utterances=tuple(reversed(original.utterances)),
        out_of_scope=tuple(reversed(original.out_of_scope)),
        source="somewhere else",
    )
    assert reordered.content_hash() == original.content_hash()


@pytest.mark.parametrize(
    "changes",
    [
        {"bot_id": "other"},
        {"language": "ko"},
        {"out_of_scope": ()},
        {"utterances": (Utterance("hi there", "greet"), Utterance("bye", "greet"))},
        {"utterances": (Utterance("hi there!", "greet"), Utterance("bye", "leave"))},
    ],
)
def test_content_hash_changes_with_anything_the_model_sees(changes: dict[str, object]) -> None:
    assert bot(**changes).content_hash() != bot().content_hash()


def test_normalize_text_collapses_unicode_whitespace_only() -> None:
    assert normalize_text("  Book\ta\u00a0 FLIGHT\n\u3000") == "Book a FLIGHT"
    assert normalize_text("쉼표, 그대로!") == "쉼표, 그대로!"


def test_match_key_folds_case_width_and_spacing() -> None:
    assert match_key("Book  a Flight") == match_key("book a flight")
    assert match_key("\uff21\uff22\uff23") == match_key("abc")  # full-width ABC
    assert match_key("book a flight") != match_key("book a flight!")


def test_language_is_korean_when_any_hangul_appears() -> None:
    assert detect_language(["play music", "음악 틀어줘"]) == "ko"
    assert detect_language(["play music", "café"]) == "en"
