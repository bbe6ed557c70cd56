"""Evicted sessions are freed on a thread of their own, then free heap pages go back.

Why a thread: glibc parks freed small chunks in the freeing thread's tcache, and counts
them as in use. A load thread that freed a session and then built the next one would
reuse those chunks unseen and measure about 16 KiB (6 %) too little for every load under
churn (241 KiB against 258 KiB, measured; the same with ``tcache_count=0``). Freeing on
the reaper keeps the load threads' measurements clean, takes onnxruntime's session
destructor off the batch's path, and each free is announced to the footprint meter so a
measurement it overlaps falls back to the estimate.

Why trim: freed sessions leave holes in the heap that RSS still counts. ``malloc_trim(0)``
hands whole free pages back, on this thread, never under the cache's lock. It walks every
free chunk under each arena's lock, so its cost follows fragmentation: 30 us with 10,000
sessions resident and none freed, 108-126 ms once 5,000 of them were freed (measured by
``bench/components/session_memory_bench.py --bots 10000 --probe``; 240-530 ms with the 2
cores busy), and meanwhile allocations in that arena wait. So trims run at most every
``TRIM_INTERVAL_S`` and take at most ``TRIM_SHARE`` of the wall time: after a trim that
took ``t``, the next waits ``t / TRIM_SHARE``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from fleetserve.cache.footprint import FootprintMeter, process_meter
from fleetserve.cache.heap import glibc_trim
from fleetserve.cache.model import LoadedModel

TRIM_INTERVAL_S = 0.1
TRIM_SHARE = 0.05


class Reaper:
    def __init__(
        self,
        meter: FootprintMeter | None = None,
        *,
        trim: Callable[[], None] | None = None,
        trim_interval_s: float = TRIM_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._meter = meter
        self._trim = trim
        self._trim_interval_s = trim_interval_s
        self._queue: queue.SimpleQueue[list[LoadedModel] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._clock = clock
        self._next_trim = 0.0

    def drop(self, models: list[LoadedModel]) -> None:
        """Hand over the cache's last references to ``models``; never blocks."""
        if not models:
            return
        self._ensure_started()
        self._queue.put(list(models))
        models.clear()

    def close(self) -> None:
        """Free what is queued and stop the thread."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fleetserve-cache-reaper", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        meter = self._meter if self._meter is not None else process_meter()
        trim = self._trim if self._trim is not None else glibc_trim()
        owed = False  # freed since the last trim
        while True:
            try:
                batch = self._queue.get(timeout=self._trim_interval_s if owed else None)
            except queue.Empty:
                batch = []
            if batch is None:
                return
            if batch:
                with meter.freeing():
                    batch.clear()  # the sessions' last references: freed on this thread
                owed = True
            if owed and trim is not None and self._queue.empty():
                owed = not self._maybe_trim(trim)

    def _maybe_trim(self, trim: Callable[[], None]) -> bool:
        started = self._clock()
        if started < self._next_trim:
            return False
        trim()
        took = self._clock() - started
        self._next_trim = started + max(self._trim_interval_s, took / TRIM_SHARE)
        return True
