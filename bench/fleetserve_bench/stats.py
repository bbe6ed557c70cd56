"""Summaries of measured samples: percentiles and rates, pure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 and p99.9 (linear interpolation), and the max; empty input gives {}."""
    if not values:
        return {}
    data = np.asarray(values, dtype=np.float64)
    p50, p99, p999 = np.percentile(data, [50, 99, 99.9])
    return {
        "p50": round(float(p50), 3),
        "p99": round(float(p99), 3),
        "p99_9": round(float(p999), 3),
        "max": round(float(data.max()), 3),
    }


def rate_per_s(count: int, first_ms: float, last_ms: float) -> float:
    """Events per second over ``[first_ms, last_ms]``; a single instant counts as 1 ms."""
    return count / (max(last_ms - first_ms, 1.0) / 1000.0)


def per_million(cpu_seconds: float, count: int) -> float:
    """CPU-seconds per million events."""
    return cpu_seconds / count * 1_000_000 if count else 0.0


def sustained_rate(timestamps_ms: Sequence[float]) -> float:
    """Outputs per second between the 10th and 90th percentile of their timestamps.

    The edges are left out on purpose: a group's first seconds include its join and
    first rebalance, and its last ones the tail of a drained backlog; neither is the
    rate it sustains.
    """
    if len(timestamps_ms) < 10:
        return rate_per_s(
            len(timestamps_ms), min(timestamps_ms, default=0), max(timestamps_ms, default=0)
        )
    ordered = sorted(timestamps_ms)
    low, high = len(ordered) // 10, (len(ordered) * 9) // 10
    return rate_per_s(high - low, ordered[low], ordered[high])


# A run queues when its last fifth waited this much longer than its first (and twice as
# long): the offered rate is above what the system serves, so latency is backlog.
QUEUEING_GROWTH_MS = 50.0
QUEUEING_FACTOR = 2.0


def p50_by_fifth(values_in_send_order: Sequence[float]) -> list[float]:
    """The median of each fifth of a run, in the order the queries were sent."""
    if len(values_in_send_order) < 5:
        return []
    fifths = np.array_split(np.asarray(values_in_send_order, dtype=np.float64), 5)
    return [round(float(np.median(part)), 3) for part in fifths]


def queueing(fifths: Sequence[float]) -> bool:
    """Latency grew through the run: a backlog built up, so the rate was not served."""
    if len(fifths) < 2:
        return False
    first, last = fifths[0], fifths[-1]
    return last - first > QUEUEING_GROWTH_MS and last > QUEUEING_FACTOR * first
