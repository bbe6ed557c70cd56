"""glibc's view of the C heap: bytes in use (``mallinfo2``) and ``malloc_trim``.

Bound lazily through the symbols already linked into the process (no library search, no
subprocess); elsewhere (musl, macOS, glibc < 2.33) both are None and callers fall back.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

HeapProbe = Callable[[], int]


class _MallInfo2(ctypes.Structure):
    # <malloc.h>, glibc >= 2.33: ten size_t fields, in this order.
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)


@functools.cache
def glibc_heap_probe() -> HeapProbe | None:
    """Bytes malloc has handed out and not had back, over every arena; about 6 us a call.

    Chunks parked in a thread's tcache count as in use: a thread that has just freed a
    session and then builds one reuses them unseen (measured: 241 KiB instead of 258 KiB),
    which is why the cache frees sessions on a thread of its own (``reaper.py``).
    """
    try:
        mallinfo2 = _libc().mallinfo2
    except AttributeError:
        return None
    mallinfo2.restype = _MallInfo2
    mallinfo2.argtypes = []

    def in_use() -> int:
        info = mallinfo2()
        return int(info.uordblks + info.hblkhd)

    return in_use


@functools.cache
def glibc_trim() -> Callable[[], None] | None:
    """Give free pages inside the heap back to the OS (``malloc_trim(0)``), if glibc can."""
    try:
        malloc_trim = _libc().malloc_trim
    except AttributeError:
        return None
    malloc_trim.restype = ctypes.c_int
    malloc_trim.argtypes = [ctypes.c_size_t]

    def trim() -> None:
        malloc_trim(0)

    return trim
