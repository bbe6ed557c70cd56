"""A worker's per-bot statistics between two flushes, and when to flush them.

Exactness: a pass's outcomes are counted only once its transaction committed
(:meth:`StatsAccumulator.committed`), and what is pending is flushed as records added to
a later pass's outputs, in that pass's transaction. If that transaction aborts, the
pending summaries stay and ride on the next pass; if it commits, they are cleared. So a
committed outcome is counted in exactly one committed bot_stats record, and an aborted
pass in none. What a worker killed with SIGKILL had pending (at most one interval) is
lost, never counted twice; a clean stop flushes it.

Volume: one record per (bot, version, stage) that had traffic in an interval, per worker
(a bot's queries go to one partition, so usually one worker): at most
``active keys / interval`` records per second, whatever the query rate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson

from fleetserve.stats.facts import OutcomeFacts
from fleetserve.stats.record import FlushInfo, stats_record
from fleetserve.stats.summary import StatsKey, Summary

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_MS = 2_000
MAX_PENDING_KEYS = 20_000
"""Flush early past this many keys, so a worker's memory and a record batch stay bounded."""


@dataclass(frozen=True)
class StatsIdentity:
    worker_id: str
    group: str
    started_at_ms: int


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class StatsAccumulator:
    def __init__(
        self,
        identity: StatsIdentity,
        *,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        max_keys: int = MAX_PENDING_KEYS,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.identity = identity
        self.interval_ms = interval_ms
        self.max_keys = max_keys
        self.clock_ms = clock_ms
        self.pending: dict[StatsKey, Summary] = {}
        self.window_start_ms = clock_ms()
        self.seq = 0

    def closing(self) -> None:
        """The worker stops: whatever is pending is due now."""
        self.interval_ms = 0

    def due(self) -> bool:
        if not self.pending:
            return False
        elapsed = self.clock_ms() - self.window_start_ms
        return elapsed >= self.interval_ms or len(self.pending) >= self.max_keys

    def flush_records(self) -> list[tuple[bytes, bytes]]:
        """The (key, value) records to add to this pass when a flush is due, else none.

        Nothing is cleared here: only :meth:`committed` with ``flushed=True`` does that.
        Statistics never stop serving: a failure here is logged and the flush skipped.
        """
        if not self.due():
            return []
        try:
            return self._records()
        except Exception:
            logger.exception("building bot-stats records failed; dropping %d", len(self.pending))
            self.pending = {}
            return []

    def _records(self) -> list[tuple[bytes, bytes]]:
        flush = FlushInfo(
            self.identity.worker_id,
            self.identity.group,
            self.identity.started_at_ms,
            self.seq + 1,
            self.window_start_ms,
            max(self.window_start_ms, self.clock_ms()),
        )
        return [
            (key.bot_id.encode(), orjson.dumps(stats_record(key, summary, flush)))
            for key, summary in sorted(self.pending.items(), key=lambda item: item[0].text())
        ]

    def committed(self, facts: Iterable[OutcomeFacts | None], *, flushed: bool) -> None:
        """A pass committed: its flush (if it carried one) is done, its outcomes count."""
        if flushed:
            self.pending = {}
            self.seq += 1
        for fact in facts:
            if fact is None:
                continue
            summary = self.pending.get(fact.key)
            if summary is None:
                if not self.pending:  # the window opens with its first outcome
                    self.window_start_ms = self.clock_ms()
                summary = self.pending[fact.key] = Summary()
            fact.add_to(summary)
