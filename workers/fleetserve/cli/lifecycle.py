"""Turn SIGINT and SIGTERM into one exception the long-running commands handle."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class ShutdownRequested(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def shutdown_on_signals() -> Iterator[None]:
    def request_shutdown(signum: int, _frame: FrameType | None) -> None:
        raise ShutdownRequested(signum)

    previous = {
        sig: signal.signal(sig, request_shutdown) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
