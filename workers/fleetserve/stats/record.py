"""bot_stats v1 records: one summary per (bot, version, stage) and flush of one worker."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetserve.contracts.codec import SCHEMA_VIOLATION
from fleetserve.errors import ContractError
from fleetserve.stats.summary import StatsKey, Summary


@dataclass(frozen=True, slots=True)
class FlushInfo:
    """Who flushed and what span of time the summaries cover."""

    worker_id: str
    group: str
    started_at_ms: int
    """When this worker incarnation started: with ``seq`` it names one flush for good."""
    seq: int
    window_start_ms: int
    window_end_ms: int


def stats_record(key: StatsKey, summary: Summary, flush: FlushInfo) -> dict[str, Any]:
    """A bot_stats v1 value, inside its contract by construction.

    Workers serialize it without the schema check (69.0 against 6.8 CPU-us a record,
    ``bench/components/stats_flush_bench.py``; a worker writes one per active bot every 2 s);
    tests/test_stats_summary.py holds this builder to the contract instead. Its only floats
    are the summary's sums, so a NaN or infinity is refused here, not written as JSON null.
    """
    for name, value in summary.sums().items():
        if not math.isfinite(value):
            raise ContractError(SCHEMA_VIOLATION, f"{name}: must be a finite number")
    return {
        "version": 1,
        "bot_id": key.bot_id,
        "model_version": key.model_version,
        "stage": key.stage,
        "window_start_ms": flush.window_start_ms,
        "window_end_ms": flush.window_end_ms,
        "worker": {
            "id": flush.worker_id,
            "group": flush.group,
            "started_at_ms": flush.started_at_ms,
        },
        "seq": flush.seq,
        **summary.counts(),
    }


def parse_record(record: Mapping[str, Any]) -> tuple[StatsKey, Summary]:
    """The key and summary of a (validated) bot_stats v1 value."""
    key = StatsKey(record["bot_id"], record.get("model_version"), record.get("stage"))
    return key, Summary.from_counts(record)
