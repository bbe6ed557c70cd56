"""How many bytes one loaded model costs the process: measured, with a calibrated fallback.

The budget is about real memory, so an entry must count what the process keeps for its
session and gets back when the session goes. Measured on these machines (onnxruntime 1.31,
glibc 2.36, fleet snapshots: 134 KB int8, 528 KB fp32):

* **RSS growth around session creation** (``/proc/self/statm``): right in a fresh process,
  wrong in a long-lived one. glibc keeps freed heap mapped (after freeing 1,000 sessions
  RSS stayed +277 MB), so once the cache has evicted anything a new session reuses those
  pages and RSS barely moves; a cache counting that would admit far more than fits.
* **An estimate from the file size**: right on average, but only an estimate.
* **Heap bytes in use around building the session** (glibc ``mallinfo2``: ``uordblks`` +
  ``hblkhd`` over every arena, about 6 us a call). It counts the bytes the session holds,
  not the pages it happens to touch, so reusing freed memory does not hide it, and those
  are the bytes a free gives back. **This is what the cache counts.**

Measured (``bench/components/cache_bench.py``): 263 KiB per int8 entry counted against 266 KiB
of VmRSS growth per session with 10,000 resident (the cache's total is 1.015 x the RSS
growth); 636 KB per fp32 session against 653 KB of RSS. Under churn with a 256 MiB budget
the heap in use stayed at 0.99 x the budget and RSS growth peaked at 1.085 x (the rest is
fragmentation of freed sessions' memory, which ``reaper.py`` trims).

What is in the window: session creation, reading its metadata and one run (a first run
allocates about 20 KiB per session that stays). What had to be fixed to make it true:

* onnxruntime's Python ``InferenceSession`` keeps the model ``bytes`` alive for the
  session's life, outside the window: 134 KiB per session, a third of the total
  (``loader.drop_model_bytes`` lets go of it, or counts it if it cannot);
* glibc's per-thread tcache counts freed chunks as in use, so a thread that freed a session
  and then built one measured 16 KiB (6 %) too little: sessions are freed on the reaper's
  thread, and a measurement that overlaps a free is not trusted.

The probe is not free: ``mallinfo2`` walks every free chunk of every arena under that
arena's lock, so its cost follows the heap's fragmentation, not its size. Measured with
10,000 int8 sessions resident: 9 us with nothing freed, 75-86 ms after 5,000 of them were
freed (``bench/components/session_memory_bench.py --bots 10000 --probe``; 150-220 ms with
the 2 cores busy), while it blocks every allocation in the arena it walks. So once
calibrated, probes are rationed: they may take at most ``PROBE_SHARE`` of the time spent
loading, and the loads between them are estimated.

The heap is process-wide, so a measurement is trusted only when no other load or free
overlapped it. Otherwise (and without glibc) the entry gets the estimate
``scale * (BASE_BYTES + PER_MODEL_BYTE * size)``: the line through the int8 and fp32 means,
with ``scale`` calibrated from the trusted measurements once there are ``MIN_SAMPLES``.
A trusted measurement is clamped to [0.5, 2] x the estimate, because another thread (an
inference run, librdkafka) may hold a transient buffer at one end of the window. Python
objects (metadata, wrappers) live outside the C heap; ``PYTHON_BYTES`` adds them (3.4 KB of
metadata measured with tracemalloc, plus the wrappers).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from fleetserve.cache.heap import HeapProbe, glibc_heap_probe

T = TypeVar("T")

BASE_BYTES = 138_700
"""Heap a session costs beyond its weights (graph, kernels, planner state), int8 and fp32."""
PER_MODEL_BYTE = 0.94
"""Heap per byte of model file: the weights are copied out of the protobuf once."""
PYTHON_BYTES = 4_096
"""Python-side objects per entry, outside the C heap: metadata, session wrapper, entry."""
CLAMP = (0.5, 2.0)
SCALE_BOUNDS = (0.25, 4.0)
MIN_SAMPLES = 8
"""Trusted measurements before the calibration is used: a process's first session also
pays onnxruntime's one-time allocations and must not set the scale alone."""
PROBE_SHARE = 0.05
"""Once calibrated, heap probes take at most this share of the time loads take."""


@dataclass(frozen=True, slots=True)
class Footprint:
    bytes: int
    measured: bool
    """True when the heap was measured around this load alone; False for the estimate."""


def prior_estimate(model_size: int) -> float:
    """Heap bytes of a session for a model file of ``model_size`` bytes (uncalibrated)."""
    return BASE_BYTES + PER_MODEL_BYTE * model_size


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


class FootprintMeter:
    """Measures the heap growth of building a session; thread-safe, one per process.

    Loads that overlap are told apart with a counter of measurements in flight and an
    epoch bumped by each start: a window is trusted when it began alone and no other
    measurement began before it ended.
    """

    def __init__(
        self,
        probe: HeapProbe | None = None,
        *,
        use_glibc: bool = True,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._probe = probe if probe is not None else (glibc_heap_probe() if use_glibc else None)
        self._clock = clock
        self._lock = threading.Lock()
        self._active = 0
        self._epoch = 0
        self._measured_sum = 0.0
        self._prior_sum = 0.0
        self._probe_seconds = 0.0  # the last probe's cost
        self._credit_seconds = 0.0  # probe time earned by loads, capped at one measurement
        self.measured = 0
        """Footprints taken from a trusted heap measurement."""
        self.estimated = 0
        """Footprints that fell back to the estimate (overlapping loads, rationed probes, no
        probe)."""

    @property
    def scale(self) -> float:
        """Measured over prior, from every trusted measurement so far (1.0 before any)."""
        with self._lock:
            return self._scale_locked()

    def estimate(self, model_size: int) -> int:
        return int(self.scale * prior_estimate(model_size)) + PYTHON_BYTES

    def measure(self, model_size: int, build: Callable[[], T]) -> tuple[T, Footprint]:
        """Run ``build`` (which creates the session) and say what it cost the process."""
        with self._lock:
            self._active += 1
            self._epoch += 1
            epoch, alone = self._epoch, self._active == 1
            probing = alone and self._may_probe_locked()
        started = self._clock()
        before = self._timed_probe() if probing else 0
        try:
            result = build()
            after = self._timed_probe() if probing else 0
        finally:
            elapsed = self._clock() - started
            with self._lock:
                self._active -= 1
                alone = alone and self._epoch == epoch
                self._earn_locked(elapsed)
        if not (probing and alone):
            with self._lock:
                self.estimated += 1
            return result, Footprint(self.estimate(model_size), measured=False)
        return result, Footprint(self._record(model_size, after - before), measured=True)

    def _may_probe_locked(self) -> bool:
        if self._probe is None:
            return False
        if self.measured < MIN_SAMPLES:
            return True
        cost = 2 * self._probe_seconds
        if self._credit_seconds < cost:
            return False
        self._credit_seconds -= cost
        return True

    def _earn_locked(self, load_seconds: float) -> None:
        # Capped at one measurement's cost: a run of cheap probes must not bank credit for
        # a burst of expensive ones once the heap fragments.
        earned = self._credit_seconds + PROBE_SHARE * load_seconds
        self._credit_seconds = min(earned, 2 * self._probe_seconds)

    def _timed_probe(self) -> int:
        assert self._probe is not None
        started = self._clock()
        value = self._probe()
        cost = self._clock() - started
        with self._lock:
            self._probe_seconds = cost
        return value

    @contextmanager
    def freeing(self) -> Iterator[None]:
        """Frees happen in here: a measurement that overlaps them is not trusted."""
        with self._lock:
            self._active += 1
            self._epoch += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1

    def _record(self, model_size: int, heap_delta: int) -> int:
        prior = prior_estimate(model_size)
        with self._lock:
            expected = self._scale_locked() * prior
            kept = clamp(heap_delta, CLAMP[0] * expected, CLAMP[1] * expected)
            self._measured_sum += kept
            self._prior_sum += prior
            self.measured += 1
        return int(kept) + PYTHON_BYTES

    def _scale_locked(self) -> float:
        if self.measured < MIN_SAMPLES:
            return 1.0
        return clamp(self._measured_sum / self._prior_sum, *SCALE_BOUNDS)


@functools.cache
def process_meter() -> FootprintMeter:
    """The meter every loader in this process shares: the heap it watches is shared too."""
    return FootprintMeter()
