"""Build dead_letter v1 records: pure functions from a consumed record and a failure."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Final

from fleetserve.bots.definition import BOT_ID_PATTERN
from fleetserve.kafka.records import InboundRecord
from fleetserve.routing import Route

MESSAGE_LIMIT: Final = 4000
_REQUEST_ID_LIMIT: Final = 128


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
    route: Route | None = None
    deadline_ms: int | None = None


def build_dead_letter(
    record: InboundRecord,
    failure: Failure,
    worker: WorkerIdentity,
    *,
    now_ms: int,
    attempts: int = 1,
    first_failed_at_ms: int | None = None,
) -> dict[str, Any]:
    """A dead letter v1 keeping ``record``'s key, value and headers byte for byte."""
    return {
        "version": 1,
        "reason": failure.reason,
        "message": _clip(failure.message),
        "error_type": failure.error_type,
        "phase": failure.phase,
        "original": {
            "value_b64": _b64(record.value),
            "key_b64": _b64(record.key),
            "headers": [{"name": name, "value_b64": _b64(value)} for name, value in record.headers],
            "timestamp_ms": record.timestamp_ms,
        },
        "source": {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "consumer_group": worker.group,
        },
        "bot_id": failure.bot_id if _valid_bot_id(failure.bot_id) else None,
        "request_id": _valid_request_id(failure.request_id),
        "model": _model(failure.route),
        "deadline_ms": failure.deadline_ms,
        "attempts": attempts,
        "worker": worker.as_ref(),
        "first_failed_at_ms": first_failed_at_ms if first_failed_at_ms is not None else now_ms,
        "dead_lettered_at_ms": now_ms,
    }


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _clip(message: str) -> str:
    message = message or "(no message)"
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


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
