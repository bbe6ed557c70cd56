"""Which replies a relabeling job wants: pure predicates over decoded reply v1 records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ReplyFilter:
    """Keep a reply only if it passes every condition that is set.

    ``bots``: the reply's bot is one of them (empty: any bot).
    ``min_confidence`` / ``max_confidence``: strict bounds, confidence > min and < max, so
    ``--below 0.5`` and ``--above 0.5`` split the replies without sharing one.
    ``fallback_only``: the model fell back to the bot's fallback label.
    ``stage``: the deployment stage that answered.
    """

    bots: frozenset[str] = frozenset()
    min_confidence: float | None = None
    max_confidence: float | None = None
    fallback_only: bool = False
    stage: str | None = None

    def __post_init__(self) -> None:
        for name in ("min_confidence", "max_confidence"):
            bound = getattr(self, name)
            if bound is not None and not 0.0 <= bound <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {bound}")
        low, high = self.min_confidence, self.max_confidence
        if low is not None and high is not None and low >= high:
            raise ValueError(f"no confidence is above {low} and below {high}")

    def matches(self, reply: Mapping[str, Any]) -> bool:
        """Whether ``reply`` passes; a reply missing a field that is filtered on fails."""
        if self.bots and reply.get("bot_id") not in self.bots:
            return False
        if self.stage is not None and reply.get("stage") != self.stage:
            return False
        if self.fallback_only and reply.get("fallback") is not True:
            return False
        return self._confidence_matches(reply.get("confidence"))

    def _confidence_matches(self, confidence: object) -> bool:
        if self.min_confidence is None and self.max_confidence is None:
            return True
        if not isinstance(confidence, int | float) or isinstance(confidence, bool):
            return False
        if self.min_confidence is not None and not confidence > self.min_confidence:
            return False
        return self.max_confidence is None or confidence < self.max_confidence
