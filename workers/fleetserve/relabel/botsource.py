"""The bots' definition files, found once and loaded on first use (training data, apply)."""

from __future__ import annotations

import logging
from pathlib import Path

from fleetserve.bots.definition import BotDefinition
from fleetserve.bots.discover import BotSource as FoundBot
from fleetserve.bots.discover import find_bots, load_source
from fleetserve.bots.text import match_key
from fleetserve.relabel.textnoise import review_key

logger = logging.getLogger(__name__)


class BotSource:
    """``path``: a bot file, a folder of bot files or a fleet; None: no training data known."""

    def __init__(self, path: Path | None) -> None:
        self._found: dict[str, FoundBot] = (
            {s.bot_id: s for s in find_bots(path)} if path is not None else {}
        )
        self._loaded: dict[str, BotDefinition | None] = {}
        self._keys: dict[str, frozenset[str]] = {}

    def file_of(self, bot_id: str) -> Path | None:
        found = self._found.get(bot_id)
        return found.path if found is not None else None

    def definition(self, bot_id: str) -> BotDefinition | None:
        if bot_id not in self._loaded:
            found = self._found.get(bot_id)
            result = load_source(found) if found is not None else None
            if result is not None and result.error is not None:
                logger.warning("bot %s cannot be loaded: %s", bot_id, result.error)
            self._loaded[bot_id] = result.loaded.definition if result and result.loaded else None
        return self._loaded[bot_id]

    def training_keys(self, bot_id: str) -> frozenset[str]:
        if bot_id not in self._keys:
            bot = self.definition(bot_id)
            texts = [u.text for u in bot.utterances] if bot is not None else []
            self._keys[bot_id] = frozenset(
                key for text in texts for key in (match_key(text), review_key(text))
            )
        return self._keys[bot_id]
