"""Fixed histogram buckets shared by the workers that count and the monitor that merges.

The edges are part of the bot_stats v1 contract (``schemas/bot_stats.v1.json``): every
record's histograms have exactly these buckets, so any two summaries merge by adding.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Final

UNIT_BUCKETS: Final = 10
"""Confidence and top-1/top-2 margin: ten buckets of 0.1 over [0, 1]; 1.0 is in the last."""

LATENCY_EDGES_MS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000)
"""Upper bounds (exclusive) of the latency buckets in ms; a last bucket holds the rest."""
LATENCY_BUCKETS: Final = len(LATENCY_EDGES_MS) + 1


def unit_bucket(value: float) -> int:
    """The bucket of a value in [0, 1] (values outside are clamped)."""
    return min(UNIT_BUCKETS - 1, max(0, int(value * UNIT_BUCKETS)))


def latency_bucket(milliseconds: float) -> int:
    return bisect_right(LATENCY_EDGES_MS, milliseconds)


def quantile(histogram: Sequence[int], q: float, uppers: Sequence[float]) -> float | None:
    """The upper edge of the bucket holding the ``q`` quantile; None for an empty histogram.

    ``uppers`` are the buckets' upper edges (the last may be ``inf``).
    """
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    running = 0
    for count, upper in zip(histogram, uppers, strict=True):
        running += count
        if running >= rank and count:
            return upper
    return uppers[-1]


UNIT_UPPERS: Final = tuple((i + 1) / UNIT_BUCKETS for i in range(UNIT_BUCKETS))
LATENCY_UPPERS: Final = (*(float(edge) for edge in LATENCY_EDGES_MS), float("inf"))
