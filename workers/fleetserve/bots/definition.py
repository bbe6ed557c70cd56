"""What a bot is: its id, language, labelled utterances and out-of-scope examples."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

import orjson

from fleetserve.core.facts import BOT_ID_PATTERN
from fleetserve.errors import BotInputError

LANGUAGE_PATTERN: Final = re.compile(r"[a-z]{2,3}")
# Bumped whenever the canonical form changes, so old hashes never match new ones.
_HASH_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class Utterance:
    """One labelled example."""

    text: str
    intent: str


@dataclass(frozen=True, slots=True)
class BotDefinition:
    """A bot as the builder trains it. ``source`` says where it came from and is not hashed."""

    bot_id: str
    language: str
    utterances: tuple[Utterance, ...]
    out_of_scope: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        validate_bot_id(self.bot_id)

    def intents(self) -> tuple[str, ...]:
        """The distinct intents, sorted: a stable label order for the model."""
        return tuple(sorted({u.intent for u in self.utterances}))

    def content_hash(self) -> str:
        """sha256 hex of everything that changes the model, i.e. every field but ``source``.

        Examples are sorted first: the same examples in another order are the same bot, so a
        re-exported file does not trigger a rebuild.
        """
        canonical = {
            "format": _HASH_FORMAT,
            "bot_id": self.bot_id,
            "language": self.language,
            "utterances": sorted((u.text, u.intent) for u in self.utterances),
            "out_of_scope": sorted(self.out_of_scope),
        }
        return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def validate_bot_id(bot_id: str) -> str:
    """Return ``bot_id`` if it is a valid id (file names, Kafka keys, URLs), else raise."""
    if not BOT_ID_PATTERN.fullmatch(bot_id):
        raise BotInputError(
            "invalid_bot_id",
            f"bot id {bot_id!r} is invalid: use 1-64 characters from a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
        )
    return bot_id


def validate_language(language: str) -> str:
    """Return ``language`` if it looks like an ISO 639 code (``en``, ``ko``), else raise."""
    if not LANGUAGE_PATTERN.fullmatch(language):
        raise BotInputError(
            "invalid_language",
            f"language {language!r} is invalid: use a lower-case ISO 639 code such as en or ko",
        )
    return language
