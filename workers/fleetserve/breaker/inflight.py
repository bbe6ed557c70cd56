"""What this worker is processing right now, in a small local file that outlives a crash.

Each pass writes its offsets here before any record is touched: one ``pwrite`` of a few
hundred bytes, with no broker round trip on the hot path. A process that dies (SIGKILL,
a native crash, the OOM killer) leaves the page cache intact, so its restart finds the
pass it died in. A clean stop writes ``clean``. ``--state-dir`` must survive the
process (a supervisor's working directory, a pod's emptyDir), not be a fresh container
layer; a worker restarted elsewhere only loses the count of that one crash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class Span:
    """The offsets ``first``..``last`` of one partition, all in one pass."""

    topic: str
    partition: int
    first: int
    last: int


@dataclass(frozen=True)
class InflightPass:
    """The pass a previous incarnation of this worker was in when it stopped."""

    incarnation: str
    seq: int
    spans: tuple[Span, ...]
    at_ms: int

    @property
    def event_id(self) -> str:
        return f"{self.incarnation}:{self.seq}"


class InflightFile:
    """One file per consumer group and worker id under ``directory``."""

    def __init__(self, directory: Path, group: str, worker_id: str) -> None:
        digest = hashlib.sha256(f"{group}\0{worker_id}".encode()).hexdigest()[:12]
        name = f"inflight-{_UNSAFE.sub('_', group)[:60]}-{_UNSAFE.sub('_', worker_id)[:60]}"
        self.path = directory / f"{name}-{digest}.json"
        self._fd: int | None = None
        self._size = 0
        self._seq = 0
        self._incarnation = ""

    def previous(self) -> InflightPass | None:
        """The pass a dead predecessor left behind; None after a clean stop or on first run."""
        try:
            value = orjson.loads(self.path.read_bytes())
            if value.get("clean", True):
                return None
            spans = tuple(Span(str(t), int(p), int(a), int(b)) for t, p, a, b in value["spans"])
            return InflightPass(
                str(value["incarnation"]), int(value["seq"]), spans, int(value["at_ms"])
            )
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            logger.warning("ignoring an unreadable in-flight file %s", self.path)
            return None

    def open(self, incarnation: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._incarnation = incarnation

    def begin(self, spans: Sequence[Span], now_ms: int) -> None:
        """Record the pass about to run. Called before any of its records is processed."""
        self._seq += 1
        self._write(
            {
                "clean": False,
                "incarnation": self._incarnation,
                "seq": self._seq,
                "at_ms": now_ms,
                "spans": [[s.topic, s.partition, s.first, s.last] for s in spans],
            }
        )

    def clean(self) -> None:
        """Nothing is in flight: the last pass committed and the worker stops."""
        self._write({"clean": True, "incarnation": self._incarnation, "seq": self._seq})

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, value: dict[str, object]) -> None:
        if self._fd is None:
            raise RuntimeError("the in-flight file is not open")
        data = orjson.dumps(value)
        # Padding over the previous content keeps this to one write; JSON ignores spaces.
        os.pwrite(self._fd, data.ljust(self._size), 0)
        self._size = max(self._size, len(data))


def spans_of(offsets: Sequence[tuple[str, int, int]]) -> list[Span]:
    """(topic, partition, offset) triples as one span per partition."""
    bounds: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in offsets:
        seen = bounds.setdefault((topic, partition), [offset, offset])
        seen[0] = min(seen[0], offset)
        seen[1] = max(seen[1], offset)
    return [Span(t, p, first, last) for (t, p), (first, last) in bounds.items()]
