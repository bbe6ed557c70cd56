"""What becomes of one consumed record, and who decides: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from fleetserve.core.records import Headers, InboundRecord
from fleetserve.core.route import Route


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """Who is answering: stamped on every reply and dead letter."""

    worker_id: str
    group: str

    def as_ref(self) -> dict[str, str]:
        return {"id": self.worker_id, "group": self.group}


@dataclass(frozen=True, slots=True)
class Origin:
    """A query as it was first read, and which try of it this is.

    A query read back from the retry tier is still reported by its first coordinates and
    its own headers, so one query keeps one identity in replies and dead letters.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    headers: Headers = ()
    attempt: int = 1
    first_failed_ms: int | None = None

    @classmethod
    def of(cls, record: InboundRecord) -> Origin:
        return cls(
            record.topic, record.partition, record.offset, record.timestamp_ms, record.headers
        )


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one record gets no reply. ``bot_id`` and the rest are whatever is known."""

    reason: str
    phase: str
    message: str
    error_type: str = "fleetserve.errors.QueryFailed"
    bot_id: str | None = None
    request_id: str | None = None
    stage: str | None = None
    route: Route | None = None
    deadline_ms: int | None = None
    retriable: bool = False
    """Transient (the store briefly unreadable): worth the retry tier, not a dead letter yet."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A record decided before it is processed: it becomes this dead letter, unread."""

    reason: str
    phase: str
    message: str
    minimal: bool = False
    """Leave the original out: it (or the outcome built from it) is what failed."""
