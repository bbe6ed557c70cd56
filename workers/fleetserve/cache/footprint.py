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

    def __init__(self, probe: HeapProbe | None = None, *, use_glibc: bool = True) -> None:
        self._probe = probe if probe is not None else (glibc_heap_probe() if use_glibc else None)
        self._lock = threading.Lock()
        self._active = 0
        self._epoch = 0
        self._measured_sum = 0.0
        self._prior_sum = 0.0
        self.measured = 0
        """Footprints taken from a trusted heap measurement."""
        self.estimated = 0
        """Footprints that fell back to the estimate (overlapping loads, no probe)."""

    @property
    def scale(self) -> float:
        """Measured over prior, from every trusted measurement so far (1.0 before any)."""
        with self._lock:
            return self._scale_locked()

    def estimate(self, model_size: int) -> int:
        return int(self.scale * prior_estimate(model_size)) + PYTHON_BYTES

    def measure(self, model_size: int, build: Callable[[], T]) -> tuple[T, Footprint]:
        """Run ``build`` (which creates the session) and say what it cost the process."""
        probe = self._probe
        with self._lock:
            self._active += 1
            self._epoch += 1
            epoch, alone = self._epoch, self._active == 1
        before = probe() if probe is not None else 0
        try:
            result = build()
            after = probe() if probe is not None else 0
        finally:
            with self._lock:
                self._active -= 1
                alone = alone and self._epoch == epoch
        if probe is None or not alone:
            with self._lock:
                self.estimated += 1
            return result, Footprint(self.estimate(model_size), measured=False)
        return result, Footprint(self._record(model_size, after - before), measured=True)

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
