"""Build dead_letter v1 records: pure functions from a consumed record and a failure.

Every dead letter these functions build passes its contract, whatever the record held:
values over the caps below are left out and named in ``original.omitted``, and every
other field is bounded to what the contract allows. ``minimal_dead_letter`` is the last
line of defence when even that went wrong: it keeps only the failure and the record's
coordinates, from which an operator can fetch the original while the topic retains it.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Final

from fleetserve.core.facts import BOT_ID_PATTERN, EPOCH_MS_MAX, EPOCH_MS_MIN, STAGES
from fleetserve.core.outcome import Failure, Origin, WorkerIdentity
from fleetserve.core.records import Headers, InboundRecord
from fleetserve.core.route import Route
from fleetserve.deadletters import reasons
from fleetserve.deadletters.headers import REPLAY_ATTEMPT
from fleetserve.kafka.headers import header_int

MESSAGE_LIMIT: Final = 4000
OMITTED_LIMIT: Final = 1000
MAX_VALUE_BYTES: Final = 1 << 20
MAX_KEY_BYTES: Final = 1024
MAX_HEADERS: Final = 64
MAX_HEADER_NAME_CHARS: Final = 1024
MAX_HEADER_VALUE_BYTES: Final = 8 * 1024
MAX_HEADERS_BYTES: Final = 64 * 1024
_REQUEST_ID_LIMIT: Final = 128
_NAME_LIMIT: Final = 255  # worker id and consumer group
_COUNT_LIMIT: Final = 1_000_000  # the contract's bound on counts
_INT32_MAX: Final = 2**31 - 1
_INT64_MAX: Final = 2**63 - 1
_STAGES: Final = frozenset(STAGES)
_TOPIC: Final = re.compile(r"[a-zA-Z0-9._-]{1,249}")
_ERROR_TYPE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_VERSION: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_SHA256: Final = re.compile(r"[0-9a-f]{64}")


def build_dead_letter(
    record: InboundRecord,
    failure: Failure,
    worker: WorkerIdentity,
    *,
    now_ms: int,
    origin: Origin | None = None,
) -> dict[str, Any]:
    """A dead letter v1 keeping the query's key, value and headers byte for byte.

    ``origin`` is the query as first read (its retry state, for a record from the retry
    tier); ``attempts`` counts every try, this one included. What is over a cap is left
    out and named in ``original.omitted``.
    """
    origin = origin or Origin.of(record)
    first_failed = min(origin.first_failed_ms or now_ms, now_ms)
    original, omitted = carried_original(record.value, record.key, origin.headers)
    return _letter(
        failure,
        worker,
        original={
            **original,
            "timestamp_ms": _timestamp(origin.timestamp_ms),
            "omitted": _clip(omitted, OMITTED_LIMIT) if omitted else None,
        },
        origin=origin,
        replay_attempt=header_int(record.headers, REPLAY_ATTEMPT),
        times=(first_failed, now_ms),
    )


def minimal_dead_letter(
    record: InboundRecord,
    failure: Failure,
    worker: WorkerIdentity,
    *,
    now_ms: int,
    why: str,
    origin: Origin | None = None,
) -> dict[str, Any]:
    """The smallest dead letter of ``record`` that still says what failed and where.

    The original value and headers are left out (``why`` says why, and where to fetch
    them); the key stays when it is within its cap. Nothing here can break the contract.
    """
    origin = origin or Origin.of(record)
    key = record.key if record.key is not None and len(record.key) <= MAX_KEY_BYTES else None
    original: dict[str, Any] = {
        "value_b64": None,
        "key_b64": _b64(key),
        "headers": [],
        "timestamp_ms": _timestamp(origin.timestamp_ms),
        "omitted": _clip(
            f"value and headers: {why}; fetch the original from source while "
            f"{_topic(origin.topic)} retains it",
            OMITTED_LIMIT,
        ),
    }
    return _letter(
        failure,
        worker,
        original=original,
        origin=origin,
        replay_attempt=header_int(record.headers, REPLAY_ATTEMPT),
        times=(now_ms, now_ms),
    )


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The dead letter's Kafka key: the original's (the bot id), unless it is over the cap."""
    return key if key is None or len(key) <= MAX_KEY_BYTES else None


def _letter(
    failure: Failure,
    worker: WorkerIdentity,
    *,
    original: dict[str, Any],
    origin: Origin,
    replay_attempt: int,
    times: tuple[int, int],
) -> dict[str, Any]:
    first_failed, now_ms = (_epoch_ms(t) for t in times)
    return {
        "version": 1,
        "reason": failure.reason if failure.reason in reasons.ALL else reasons.INTERNAL_ERROR,
        "message": _clip(failure.message or "(no message)", MESSAGE_LIMIT),
        "error_type": _error_type(failure.error_type),
        "phase": failure.phase if failure.phase in reasons.PHASES else reasons.PHASE_DECODE,
        "original": original,
        "source": {
            "topic": _topic(origin.topic),
            "partition": _bounded(origin.partition, 0, _INT32_MAX),
            "offset": _bounded(origin.offset, 0, _INT64_MAX),
            "consumer_group": _name(worker.group),
        },
        "bot_id": failure.bot_id if _valid_bot_id(failure.bot_id) else None,
        "request_id": _valid_request_id(failure.request_id),
        "stage": failure.stage if failure.stage in _STAGES else None,
        "model": _model(failure.route),
        "deadline_ms": _epoch_ms_or_none(failure.deadline_ms),
        "attempts": _bounded(origin.attempt, 1, _COUNT_LIMIT),
        "replay_attempt": _bounded(replay_attempt, 0, _COUNT_LIMIT),
        "worker": {"id": _name(worker.worker_id), "group": _name(worker.group)},
        "first_failed_at_ms": min(first_failed, now_ms),
        "last_failed_at_ms": now_ms,
        "dead_lettered_at_ms": now_ms,
    }


def carried_original(
    value: bytes | None, key: bytes | None, headers: Headers
) -> tuple[dict[str, Any], list[str]]:
    """The value, key and headers a dead letter carries (base64), and a note per thing left out."""
    omitted: list[str] = []
    if value is not None and len(value) > MAX_VALUE_BYTES:
        omitted.append(f"value: {len(value)} bytes, over the {MAX_VALUE_BYTES}-byte cap")
        value = None
    if key is not None and len(key) > MAX_KEY_BYTES:
        omitted.append(f"key: {len(key)} bytes, over the {MAX_KEY_BYTES}-byte cap")
        key = None
    kept, dropped = _carried_headers(headers)
    if dropped:
        omitted.append(
            f"headers: {dropped} of {len(headers)} left out (caps: {MAX_HEADERS} headers, "
            f"names of {MAX_HEADER_NAME_CHARS} characters, values of {MAX_HEADER_VALUE_BYTES} "
            f"bytes, {MAX_HEADERS_BYTES} bytes in all)"
        )
    if omitted:
        omitted.append("fetch the original from source while its topic retains it")
    carried = {
        "value_b64": _b64(value),
        "key_b64": _b64(key),
        "headers": [{"name": name, "value_b64": _b64(data)} for name, data in kept],
    }
    return carried, omitted


def _carried_headers(headers: Headers) -> tuple[list[tuple[str, bytes | None]], int]:
    kept: list[tuple[str, bytes | None]] = []
    total = 0
    for name, data in headers:
        size = len(name.encode("utf-8", "surrogatepass")) + len(data or b"")
        fits = (
            len(kept) < MAX_HEADERS
            and len(name) <= MAX_HEADER_NAME_CHARS
            and len(data or b"") <= MAX_HEADER_VALUE_BYTES
            and total + size <= MAX_HEADERS_BYTES
            and _encodable(name)
        )
        if fits:
            kept.append((name, data))
            total += size
    return kept, len(headers) - len(kept)


def _encodable(text: str) -> bool:
    """A header name JSON can carry: lone surrogates cannot be encoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _clip(text: str | list[str], limit: int) -> str:
    if isinstance(text, list):
        text = "; ".join(text)
    text = text.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded(value: int, low: int, high: int) -> int:
    return min(max(int(value), low), high)


def _epoch_ms(value: int) -> int:
    return _bounded(value, EPOCH_MS_MIN, EPOCH_MS_MAX)


def _epoch_ms_or_none(value: int | None) -> int | None:
    if isinstance(value, int) and EPOCH_MS_MIN <= value <= EPOCH_MS_MAX:
        return value
    return None


def _timestamp(value: int | None) -> int | None:
    return value if isinstance(value, int) and 0 <= value <= _INT64_MAX else None


def _topic(topic: str) -> str:
    # Kafka only has topics that match; this keeps a hand-built record inside the contract.
    return topic if _TOPIC.fullmatch(topic) else "invalid-topic-name"


def _name(name: str) -> str:
    name = _clip(name, _NAME_LIMIT)
    return name or "unknown"


def _error_type(error_type: str) -> str:
    if len(error_type) <= 256 and _ERROR_TYPE.fullmatch(error_type):
        return error_type
    return "builtins.Exception"


def _valid_bot_id(bot_id: object) -> bool:
    return isinstance(bot_id, str) and BOT_ID_PATTERN.fullmatch(bot_id) is not None


def _valid_request_id(request_id: object) -> str | None:
    if isinstance(request_id, str) and 1 <= len(request_id) <= _REQUEST_ID_LIMIT:
        return request_id
    return None


def _model(route: Route | None) -> dict[str, str] | None:
    if route is None or route.stage not in _STAGES:
        return None
    if not (_VERSION.fullmatch(route.model_version) and _SHA256.fullmatch(route.sha256)):
        return None
    return {"version": route.model_version, "sha256": route.sha256, "stage": route.stage}
