"""Now, in epoch milliseconds: the unit of every timestamp in fleetserve's messages."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
