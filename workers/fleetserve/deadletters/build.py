"""Build dead_letter v1 records: pure functions from a consumed record and a failure."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Final

from fleetserve.bots.definition import BOT_ID_PATTERN
from fleetserve.deadletters.headers import REPLAY_ATTEMPT, header_int
from fleetserve.kafka.records import InboundRecord
from fleetserve.retry.state import RetryState, original_headers
from fleetserve.routing import Route

MESSAGE_LIMIT: Final = 4000
_REQUEST_ID_LIMIT: Final = 128
_COUNT_LIMIT: Final = 1_000_000  # the contract's bound on counts
_STAGES: Final = frozenset({"dev", "beta", "real"})
_EPOCH_MS_RANGE: Final = range(946_684_800_000, 4_102_444_800_001)  # the contract's bounds


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """Who is answering: stamped on every reply and dead letter."""

    worker_id: str
    group: str

    def as_ref(self) -> dict[str, str]:
        return {"id": self.worker_id, "group": self.group}


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


def build_dead_letter(
    record: InboundRecord,
    failure: Failure,
    worker: WorkerIdentity,
    *,
    now_ms: int,
    retried: RetryState | None = None,
) -> dict[str, Any]:
    """A dead letter v1 keeping the query's key, value and headers byte for byte.

    ``retried`` is the retry state of a record read back from the retry tier (only that
    topic's headers are fleetserve's to trust): it is reported as the query it was, with
    its first coordinates and first failure time, without the retry headers in
    ``original.headers``; ``attempts`` counts every try, this one included.
    """
    attempts = 1 if retried is None else retried.attempts + 1
    first_failed = now_ms if retried is None else min(retried.first_failed_ms or now_ms, now_ms)
    return {
        "version": 1,
        "reason": failure.reason,
        "message": _clip(failure.message),
        "error_type": failure.error_type,
        "phase": failure.phase,
        "original": {
            "value_b64": _b64(record.value),
            "key_b64": _b64(record.key),
            "headers": [
                {"name": name, "value_b64": _b64(value)}
                for name, value in (record.headers if retried is None else original_headers(record))
            ],
            "timestamp_ms": record.timestamp_ms if retried is None else retried.timestamp_ms,
        },
        "source": {
            "topic": record.topic if retried is None else retried.topic,
            "partition": record.partition if retried is None else retried.partition,
            "offset": record.offset if retried is None else retried.offset,
            "consumer_group": worker.group,
        },
        "bot_id": failure.bot_id if _valid_bot_id(failure.bot_id) else None,
        "request_id": _valid_request_id(failure.request_id),
        "stage": failure.stage if failure.stage in _STAGES else None,
        "model": _model(failure.route),
        "deadline_ms": _epoch_ms_or_none(failure.deadline_ms),
        "attempts": attempts,
        "replay_attempt": min(header_int(record.headers, REPLAY_ATTEMPT), _COUNT_LIMIT),
        "worker": worker.as_ref(),
        "first_failed_at_ms": first_failed,
        "last_failed_at_ms": now_ms,
        "dead_lettered_at_ms": now_ms,
    }


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _clip(message: str) -> str:
    message = message or "(no message)"
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


def _epoch_ms_or_none(value: int | None) -> int | None:
    return value if isinstance(value, int) and value in _EPOCH_MS_RANGE else None


def _valid_bot_id(bot_id: object) -> bool:
    return isinstance(bot_id, str) and BOT_ID_PATTERN.fullmatch(bot_id) is not None


def _valid_request_id(request_id: object) -> str | None:
    if isinstance(request_id, str) and 1 <= len(request_id) <= _REQUEST_ID_LIMIT:
        return request_id
    return None


def _model(route: Route | None) -> dict[str, str] | None:
    if route is None:
        return None
    return {"version": route.model_version, "sha256": route.sha256, "stage": route.stage}
