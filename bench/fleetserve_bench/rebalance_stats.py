"""The rebalance scenario's numbers: outcomes, gaps, recovery and rates from the replies."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fleetserve_bench.collector import Reply
from fleetserve_bench.metrics_scrape import GroupMember, Scrape
from fleetserve_bench.stats import percentiles, sustained_rate

RECOVERED_FRACTION = 0.8
RATE_WINDOW_MS = 1000.0
RATE_STEP_MS = 100.0
SERIES_BUCKET_MS = 250.0
RECORDS = "fleetserve_records_total"
SPAN_COUNTERS = {
    "records": RECORDS,
    "passes": "fleetserve_batch_seconds_count",
    "pass_seconds": "fleetserve_batch_seconds_sum",
    "fair_share_deferrals": "fleetserve_fair_share_deferrals_total",
    "aborted_transactions": "fleetserve_transactions_aborted_total",
}
MISSES = "fleetserve_cache_misses_total"
Snapshot = dict[int, Scrape]  # by ops port: one scrape of every live member


@dataclass
class Event:
    name: str
    at_ms: float  # wall clock, the replies' clock
    metrics: Snapshot  # every live member just before the event
    extra: dict[str, Any] = field(default_factory=dict)


def snapshot(members: Sequence[GroupMember]) -> Snapshot:
    return {m.port: m.metrics() for m in members}


def grown(start: Snapshot, end: Snapshot, name: str) -> float:
    """How much ``name`` grew on the members alive at ``end`` (one absent at start had 0)."""
    return sum(s.get(name) - (start[p].get(name) if p in start else 0.0) for p, s in end.items())


def outcomes(sent: Sequence[str], mine: Sequence[Reply], foreign: int) -> dict[str, Any]:
    counts = Counter(r.request_id for r in mine)
    duplicated = sorted(rid for rid, n in counts.items() if n > 1)
    return {
        "sent": len(sent),
        "replied": len(counts),
        "unanswered": len(set(sent) - counts.keys()),
        "duplicated": sum(counts[rid] - 1 for rid in duplicated),
        "duplicated_request_ids": duplicated[:20],
        "other_replies": foreign,
    }


def _sent_ms(reply: Reply) -> float:
    return reply.produced_ms - reply.latency_ms


def span_counters(start: Snapshot, end: Snapshot) -> dict[str, float]:
    grew = {key: grown(start, end, name) for key, name in SPAN_COUNTERS.items()}
    passes = grew.pop("passes")
    seconds = grew.pop("pass_seconds")
    return {
        **{key: int(value) for key, value in grew.items()},
        "passes": int(passes),
        "records_per_pass": round(grew["records"] / passes, 1) if passes else 0.0,
        "pass_ms_mean": round(1000 * seconds / passes, 2) if passes else 0.0,
    }


def steady_summary(
    mine: Sequence[Reply],
    started_ms: float,
    until_ms: float,
    misses: float,
    workers: dict[str, float],
) -> dict[str, Any]:
    """The load before the first event: the yardstick for the events' gaps and latency."""
    produced = sorted(r.produced_ms for r in mine if r.produced_ms < until_ms)
    return {
        "span_s": round((until_ms - started_ms) / 1000, 2),
        "replies_per_s": round(sustained_rate(produced), 1),
        "max_gap_ms": round(max_gap(produced), 1),
        "max_partition_gap_ms": round(partition_gap(mine, started_ms, until_ms), 1),
        "latency_ms": percentiles([r.latency_ms for r in mine if _sent_ms(r) < until_ms]),
        "cold_loads": int(misses),
        "workers": workers,
    }


def event_summary(
    event: Event,
    mine: Sequence[Reply],
    offered_per_s: float,
    started_ms: float,
    window_end_ms: float,
    end_metrics: Snapshot,
) -> dict[str, Any]:
    """The event's span runs from it to the next event (or the end of the run)."""
    produced = sorted(r.produced_ms for r in mine if r.produced_ms >= event.at_ms - 1000)
    in_window = [p for p in produced if p <= window_end_ms]
    sent_in = [r.latency_ms for r in mine if event.at_ms <= _sent_ms(r) < window_end_ms]
    return {
        "event": event.name,
        "at_s": round((event.at_ms - started_ms) / 1000, 2),
        "window_s": round((window_end_ms - event.at_ms) / 1000, 2),
        "max_gap_ms": round(max_gap(in_window), 1),
        "max_partition_gap_ms": round(partition_gap(mine, event.at_ms - 1000, window_end_ms), 1),
        "recovered_after_s": recovery_s(produced, event.at_ms, window_end_ms, offered_per_s),
        "latency_ms": percentiles(sent_in),
        "cold_loads": int(grown(event.metrics, end_metrics, MISSES)),
        **event.extra,
        "workers": span_counters(event.metrics, end_metrics),
    }


def partition_gap(replies: Sequence[Reply], from_ms: float, to_ms: float) -> float:
    """The largest gap between consecutive replies in one partition of the replies topic.

    Replies are keyed and partitioned like the queries (see ``UPSTREAM``), so a replies
    partition stands for the queries partition that moved; a partition of rarely asked
    bots has gaps of its own, which the steady phase's figure shows.
    """
    by_partition: dict[int, list[float]] = {}
    for r in replies:
        if from_ms <= r.produced_ms <= to_ms:
            by_partition.setdefault(r.partition, []).append(r.produced_ms)
    return max((max_gap(sorted(p)) for p in by_partition.values()), default=0.0)


def max_gap(produced_sorted: Sequence[float]) -> float:
    if len(produced_sorted) < 2:
        return 0.0
    return float(np.diff(np.asarray(produced_sorted)).max())


def recovery_s(
    produced_sorted: Sequence[float], event_ms: float, end_ms: float, offered_per_s: float
) -> float | None:
    """Seconds from the event until every later 1 s window holds >= 80 % of the offered rate.

    0 when the rate never dipped; None when it had not recovered by the end of the span
    (its last window is still short), or the span is shorter than one window.
    """
    if end_ms - event_ms < RATE_WINDOW_MS:
        return None
    data = np.asarray(produced_sorted)
    need = RECOVERED_FRACTION * offered_per_s * RATE_WINDOW_MS / 1000
    starts = np.arange(event_ms, end_ms - RATE_WINDOW_MS + 1e-9, RATE_STEP_MS)
    counts = np.searchsorted(data, starts + RATE_WINDOW_MS) - np.searchsorted(data, starts)
    low = np.nonzero(counts < need)[0]
    if low.size == 0:
        return 0.0
    if low[-1] == len(starts) - 1:
        return None
    return round(float(starts[low[-1]] + RATE_WINDOW_MS - event_ms) / 1000, 2)


def rate_series(mine: Sequence[Reply], started_ms: float, end_ms: float) -> dict[str, Any]:
    """Replies per second in 250 ms buckets from the load's start, for a plot."""
    edges = np.arange(started_ms, end_ms + SERIES_BUCKET_MS, SERIES_BUCKET_MS)
    counts, _ = np.histogram([r.produced_ms for r in mine], bins=edges)
    return {
        "bucket_s": SERIES_BUCKET_MS / 1000,
        "replies_per_s": [round(float(c) * 1000 / SERIES_BUCKET_MS, 1) for c in counts],
    }
