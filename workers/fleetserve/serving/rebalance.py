"""Count the cold loads an assignment change causes: misses in a window after it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class ColdLoadWindow:
    started_at: float
    misses_before: int
    change: str


class RebalanceTracker:
    """Opens a window at each assignment change and reports the misses it saw."""

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self.open: ColdLoadWindow | None = None
        self.completed: list[tuple[str, int]] = []

    def changed(self, change: str, misses_now: int, now: float) -> None:
        if self.open is not None:
            self._close(misses_now)
        self.open = ColdLoadWindow(now, misses_now, change)

    def observe(self, misses_now: int, now: float) -> tuple[str, int] | None:
        """The finished window's (change, cold loads), once its time is up."""
        if self.open is None or now - self.open.started_at < self.window_s:
            return None
        return self._close(misses_now)

    def _close(self, misses_now: int) -> tuple[str, int]:
        assert self.open is not None
        result = (self.open.change, misses_now - self.open.misses_before)
        self.completed.append(result)
        logger.info(
            "rebalance (%s): %d cold model loads in the %.0f s after it",
            result[0],
            result[1],
            self.window_s,
        )
        self.open = None
        return result
