"""Spread sends evenly at a rate, by the monotonic clock; no burst after a slow stretch."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """``wait()`` before each send keeps sends at most ``rate`` per second (None or 0: no limit)."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate < 0:
            raise ValueError(f"rate must not be negative, got {rate}")
        self.interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def delay(self) -> float:
        """Seconds the next ``wait()`` would sleep now."""
        if self._next is None:
            return 0.0
        return max(self._next - self._clock(), 0.0)

    def wait(self) -> None:
        if not self.interval:
            return
        now = self._clock()
        if self._next is not None and self._next > now:
            self._sleep(self._next - now)
            now = self._next
        # From the actual send time: time lost while reading is not made up by a burst.
        self._next = now + self.interval
