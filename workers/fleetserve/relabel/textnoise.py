"""Which collected query texts are noise, and the key that deduplicates the rest. Pure."""

from __future__ import annotations

import unicodedata
from collections.abc import Container
from typing import Final

from fleetserve.bots.text import match_key
from fleetserve.models.featurize import normalize

DEFAULT_MAX_CHARS: Final = 300
# A text made of at most this many distinct characters, and at least _MIN_REPEAT_LENGTH
# long, is a key held down or a laugh ("aaaa", "ㅋㅋㅋㅋ", "hahaha"), not a question.
_MAX_DISTINCT_FOR_REPEAT: Final = 2
_MIN_REPEAT_LENGTH: Final = 4

NOISE_REASONS: Final = (
    "empty",
    "no_letters",
    "repeated_characters",
    "too_long",
    "in_training_data",
)


def review_key(text: str) -> str:
    """What two queries must share to be one review entry: the featurizer's own view of
    the text (NFKC, casefold, word tokens), so "What's my balance?" and "whats my
    balance" are one entry."""
    return " ".join(normalize(text))


def noise_reason(
    text: str, training_keys: Container[str], max_chars: int = DEFAULT_MAX_CHARS
) -> str | None:
    """Why ``text`` is not worth a reviewer's time, or None if it is."""
    stripped = "".join(text.split())
    if not stripped:
        return "empty"
    if not any(unicodedata.category(ch).startswith("L") for ch in stripped):
        return "no_letters"
    if (
        len(stripped) >= _MIN_REPEAT_LENGTH
        and len(set(stripped.casefold())) <= _MAX_DISTINCT_FOR_REPEAT
    ):
        return "repeated_characters"
    if len(text) > max_chars:
        return "too_long"
    if match_key(text) in training_keys or review_key(text) in training_keys:
        return "in_training_data"
    return None
