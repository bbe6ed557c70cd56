"""Failed loads remembered for a while, so a broken snapshot is not re-read for every batch.

Pure apart from the clock the caller passes in; not thread-safe (the cache holds its lock).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetserve.cache.model import CacheKey
from fleetserve.errors import QueryFailed


@dataclass(frozen=True, slots=True)
class _Remembered:
    failure: QueryFailed
    until: float


def fresh_copy(failure: QueryFailed) -> QueryFailed:
    """An equal QueryFailed. Re-raising one shared instance from many threads and batches
    would keep extending its ``__traceback__``; each caller gets its own."""
    return QueryFailed(
        failure.reason, str(failure), phase=failure.phase, retriable=failure.retriable
    )


class FailureMemo:
    def __init__(self, ttl_s: float) -> None:
        if ttl_s < 0:
            raise ValueError(f"failure_ttl_s must be >= 0, not {ttl_s}")
        self.ttl_s = ttl_s
        self._failures: dict[CacheKey, _Remembered] = {}

    def __len__(self) -> int:
        return len(self._failures)

    def remember(self, key: CacheKey, failure: QueryFailed, now: float) -> None:
        if self.ttl_s == 0 or failure.retriable:
            # A transient failure is the retry tier's to pace; remembering it would spend
            # the query's attempts on the memo instead of on the store.
            return
        # Failures are rare, so a sweep on each keeps the memo from growing without a timer.
        self._failures = {k: r for k, r in self._failures.items() if r.until > now}
        self._failures[key] = _Remembered(failure, now + self.ttl_s)

    def recall(self, key: CacheKey, now: float) -> QueryFailed | None:
        """A copy of the failure remembered for ``key``, while it is fresh."""
        remembered = self._failures.get(key)
        if remembered is None:
            return None
        if remembered.until <= now:
            del self._failures[key]
            return None
        return fresh_copy(remembered.failure)

    def forget_bot(self, bot_id: str) -> None:
        """A new deployment is news: its bot's snapshots deserve a fresh try."""
        self._failures = {k: r for k, r in self._failures.items() if k[0] != bot_id}
