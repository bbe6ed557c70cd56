"""One summary of a bot's traffic on one model version and stage: counts that merge by adding.

A summary holds no samples, only sums and fixed histograms (``buckets.py``), so the
summaries of many passes, workers or minutes merge into one of the same size, in any
order, with the same result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetserve.stats.buckets import (
    LATENCY_BUCKETS,
    UNIT_BUCKETS,
    latency_bucket,
    unit_bucket,
)


@dataclass(frozen=True, slots=True, order=True)
class StatsKey:
    """What a summary is about. ``model_version`` is None for queries that failed before a
    model was chosen (unknown bot, no deployment, deadline passed before routing)."""

    bot_id: str
    model_version: str | None
    stage: str | None

    def text(self) -> str:
        """``bot|version|stage`` with ``-`` for an unknown part: a table key."""
        return f"{self.bot_id}|{self.model_version or '-'}|{self.stage or '-'}"

    @classmethod
    def parse(cls, text: str) -> StatsKey:
        bot_id, version, stage = text.split("|")
        return cls(bot_id, None if version == "-" else version, None if stage == "-" else stage)


def _zeros(n: int) -> list[int]:
    return [0] * n


@dataclass
class Summary:
    replies: int = 0
    fallbacks: int = 0
    confidence_sum: float = 0.0
    confidence_sum_sq: float = 0.0
    confidence_hist: list[int] = field(default_factory=lambda: _zeros(UNIT_BUCKETS))
    margin_hist: list[int] = field(default_factory=lambda: _zeros(UNIT_BUCKETS))
    latency_sum_ms: float = 0.0
    latency_hist: list[int] = field(default_factory=lambda: _zeros(LATENCY_BUCKETS))
    inference_sum_ms: float = 0.0
    inference_sum_sq: float = 0.0
    dead_letters: Counter[str] = field(default_factory=Counter)

    # -- counting -------------------------------------------------------------------------

    def add_reply(
        self,
        *,
        confidence: float,
        margin: float | None,
        fallback: bool,
        latency_ms: float,
        inference_ms: float,
    ) -> None:
        self.replies += 1
        self.fallbacks += fallback
        self.confidence_sum += confidence
        self.confidence_sum_sq += confidence * confidence
        self.confidence_hist[unit_bucket(confidence)] += 1
        if margin is not None:  # a reply asked for top_k 1 has no second score
            self.margin_hist[unit_bucket(margin)] += 1
        self.latency_sum_ms += latency_ms
        self.latency_hist[latency_bucket(latency_ms)] += 1
        self.inference_sum_ms += inference_ms
        self.inference_sum_sq += inference_ms * inference_ms

    def add_dead_letter(self, reason: str, n: int = 1) -> None:
        self.dead_letters[reason] += n

    def merge(self, other: Summary) -> Summary:
        """Add ``other`` into this summary (and return it)."""
        self.replies += other.replies
        self.fallbacks += other.fallbacks
        self.confidence_sum += other.confidence_sum
        self.confidence_sum_sq += other.confidence_sum_sq
        _add(self.confidence_hist, other.confidence_hist)
        _add(self.margin_hist, other.margin_hist)
        self.latency_sum_ms += other.latency_sum_ms
        _add(self.latency_hist, other.latency_hist)
        self.inference_sum_ms += other.inference_sum_ms
        self.inference_sum_sq += other.inference_sum_sq
        self.dead_letters.update(other.dead_letters)
        return self

    # -- reading --------------------------------------------------------------------------

    @property
    def dead_letter_count(self) -> int:
        return sum(self.dead_letters.values())

    @property
    def outcomes(self) -> int:
        """Queries that ended here: replies plus dead letters."""
        return self.replies + self.dead_letter_count

    def empty(self) -> bool:
        return self.outcomes == 0

    # -- the contract's "counts" ----------------------------------------------------------

    def sums(self) -> dict[str, float]:
        """The floats of :meth:`counts`, by their path in the record."""
        return {
            "confidence.sum": self.confidence_sum,
            "confidence.sum_sq": self.confidence_sum_sq,
            "latency_ms.sum": self.latency_sum_ms,
            "inference_ms.sum": self.inference_sum_ms,
            "inference_ms.sum_sq": self.inference_sum_sq,
        }

    def counts(self) -> dict[str, Any]:
        """The summary as the counting fields of a bot_stats v1 record."""
        return {
            "replies": self.replies,
            "fallbacks": self.fallbacks,
            "confidence": {
                "sum": self.confidence_sum,
                "sum_sq": self.confidence_sum_sq,
                "histogram": list(self.confidence_hist),
            },
            "margin": {"histogram": list(self.margin_hist)},
            "latency_ms": {"sum": self.latency_sum_ms, "histogram": list(self.latency_hist)},
            "inference_ms": {"sum": self.inference_sum_ms, "sum_sq": self.inference_sum_sq},
            "dead_letters": dict(sorted(self.dead_letters.items())),
        }

    @classmethod
    def from_counts(cls, counts: Mapping[str, Any]) -> Summary:
        confidence, latency = counts["confidence"], counts["latency_ms"]
        inference = counts["inference_ms"]
        return cls(
            replies=int(counts["replies"]),
            fallbacks=int(counts["fallbacks"]),
            confidence_sum=float(confidence["sum"]),
            confidence_sum_sq=float(confidence["sum_sq"]),
            confidence_hist=[int(n) for n in confidence["histogram"]],
            margin_hist=[int(n) for n in counts["margin"]["histogram"]],
            latency_sum_ms=float(latency["sum"]),
            latency_hist=[int(n) for n in latency["histogram"]],
            inference_sum_ms=float(inference["sum"]),
            inference_sum_sq=float(inference["sum_sq"]),
            dead_letters=Counter({str(k): int(v) for k, v in counts["dead_letters"].items()}),
        )


FLAT_FIXED = 4 + 2 * UNIT_BUCKETS + 1 + LATENCY_BUCKETS + 2
"""Length of :meth:`Summary.flat` before the dead letters' (reason, count) pairs."""


def flat(summary: Summary) -> list[Any]:
    """The summary as one flat JSON list: compact for a table holding many windows."""
    return [
        summary.replies,
        summary.fallbacks,
        summary.confidence_sum,
        summary.confidence_sum_sq,
        *summary.confidence_hist,
        *summary.margin_hist,
        summary.latency_sum_ms,
        *summary.latency_hist,
        summary.inference_sum_ms,
        summary.inference_sum_sq,
        *(item for pair in sorted(summary.dead_letters.items()) for item in pair),
    ]


def from_flat(values: list[Any]) -> Summary:
    u, lat = UNIT_BUCKETS, LATENCY_BUCKETS
    at = 4 + 2 * u
    pairs = values[FLAT_FIXED:]
    return Summary(
        replies=int(values[0]),
        fallbacks=int(values[1]),
        confidence_sum=float(values[2]),
        confidence_sum_sq=float(values[3]),
        confidence_hist=[int(n) for n in values[4 : 4 + u]],
        margin_hist=[int(n) for n in values[4 + u : at]],
        latency_sum_ms=float(values[at]),
        latency_hist=[int(n) for n in values[at + 1 : at + 1 + lat]],
        inference_sum_ms=float(values[at + 1 + lat]),
        inference_sum_sq=float(values[at + 2 + lat]),
        dead_letters=Counter({str(pairs[i]): int(pairs[i + 1]) for i in range(0, len(pairs), 2)}),
    )


def _add(into: list[int], other: list[int]) -> None:
    for index, value in enumerate(other):
        into[index] += value


def merged(summaries: list[Summary]) -> Summary:
    total = Summary()
    for summary in summaries:
        total.merge(summary)
    return total
