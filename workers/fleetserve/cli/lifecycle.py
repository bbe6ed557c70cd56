"""SIGINT and SIGTERM handling shared by the long-running commands."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ShutdownRequested(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def on_stop_signals(handle: Callable[[int], None]) -> Iterator[None]:
    """Call ``handle(signum)`` on SIGINT/SIGTERM inside the block; restore handlers after."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        handle(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def shutdown_on_signals() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into ShutdownRequested, raised wherever the main thread is."""

    def request_shutdown(signum: int) -> None:
        raise ShutdownRequested(signum)

    with on_stop_signals(request_shutdown):
        yield
