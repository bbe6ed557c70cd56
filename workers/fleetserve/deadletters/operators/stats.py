"""Counts over dead letters: by reason, bot, reason and bot, group and model version."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

NO_BOT: Final = "(none)"
"""Counted for a dead letter whose bot is unknown (undecodable input, an invalid bot id)."""
NO_VERSION: Final = "(none)"


@dataclass
class DeadLetterStats:
    total: int = 0
    unreadable: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_bot: Counter[str] = field(default_factory=Counter)
    by_reason_bot: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_group: Counter[str] = field(default_factory=Counter)
    by_version: Counter[str] = field(default_factory=Counter)
    oldest_ms: int | None = None
    newest_ms: int | None = None

    def add(self, dead_letter: Mapping[str, Any]) -> None:
        reason = str(dead_letter["reason"])
        bot = dead_letter.get("bot_id") or NO_BOT
        model = dead_letter.get("model") or {}
        self.total += 1
        self.by_reason[reason] += 1
        self.by_bot[bot] += 1
        self.by_reason_bot[(reason, bot)] += 1
        self.by_group[str(dead_letter["source"]["consumer_group"])] += 1
        self.by_version[model.get("version") or NO_VERSION] += 1
        at = dead_letter["dead_lettered_at_ms"]
        self.oldest_ms = at if self.oldest_ms is None else min(self.oldest_ms, at)
        self.newest_ms = at if self.newest_ms is None else max(self.newest_ms, at)

    def add_unreadable(self) -> None:
        self.unreadable += 1

    def as_json(self, top: int) -> dict[str, Any]:
        return {
            "total": self.total,
            "unreadable": self.unreadable,
            "oldest_ms": self.oldest_ms,
            "newest_ms": self.newest_ms,
            "by_reason": dict(self.by_reason.most_common()),
            "by_bot": dict(self.by_bot.most_common()),
            "by_group": dict(self.by_group.most_common()),
            "by_version": dict(self.by_version.most_common()),
            "top_reason_bot": [
                {"reason": reason, "bot_id": bot, "count": count}
                for (reason, bot), count in self.by_reason_bot.most_common(top)
            ],
        }
