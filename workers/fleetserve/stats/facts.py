"""What one outcome contributes to its bot's statistics, read from the reply or dead letter.

Built where the worker builds the outcome, carried on the pass's output, and counted only
once that output committed: so the statistics count exactly what readers of the replies
and dead-letter topics see. ``reply_facts`` reads the same facts back from a reply as its
readers decode it; the tests hold the facts a reply is built with to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from fleetserve.stats.summary import StatsKey, Summary


class OutcomeFacts(NamedTuple):
    key: StatsKey
    reason: str | None = None
    """The dead letter's reason; None for a reply."""
    confidence: float = 0.0
    margin: float | None = None
    fallback: bool = False
    latency_ms: float = 0.0
    inference_ms: float = 0.0

    def add_to(self, summary: Summary) -> None:
        if self.reason is not None:
            summary.add_dead_letter(self.reason)
            return
        summary.add_reply(
            confidence=self.confidence,
            margin=self.margin,
            fallback=self.fallback,
            latency_ms=self.latency_ms,
            inference_ms=self.inference_ms,
        )


def reply_facts(reply: Mapping[str, Any]) -> OutcomeFacts:
    """The facts of a reply v1 value."""
    top = reply["top_k"]
    margin = top[0]["score"] - top[1]["score"] if len(top) > 1 else None
    timings = reply["timings"]
    return OutcomeFacts(
        StatsKey(reply["bot_id"], reply["model"]["version"], reply["stage"]),
        confidence=float(reply["confidence"]),
        margin=margin,
        fallback=bool(reply["fallback"]),
        latency_ms=float(timings["total_ms"]),
        inference_ms=float(timings["inference_ms"]),
    )


def dead_letter_facts(dead_letter: Mapping[str, Any]) -> OutcomeFacts | None:
    """The facts of a dead letter v1 value; None when it names no bot (nothing to count)."""
    bot_id = dead_letter.get("bot_id")
    if not isinstance(bot_id, str):
        return None
    model = dead_letter.get("model") or {}
    stage = model.get("stage") or dead_letter.get("stage")
    return OutcomeFacts(
        StatsKey(bot_id, model.get("version"), stage), reason=str(dead_letter["reason"])
    )
