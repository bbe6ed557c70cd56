"""Messages and records as the contracts define them, built the same way by every test.

Each builder returns a valid message with plain defaults; a test passes only what it is
about. Queries are raw dicts (tests break them on purpose), replies are checked against
their schema here, dead letters come from the product's builder.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from fleetserve.contracts.codec import validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.clock import now_ms
from fleetserve.core.outcome import Failure, WorkerIdentity
from fleetserve.core.records import Headers, InboundRecord
from fleetserve.deadletters.build import build_dead_letter

SHA: str = "e" * 64
NOW: int = 1_790_000_000_000
WORKER: WorkerIdentity = WorkerIdentity("w1", "real")
_offsets = itertools.count()


def query_value(bot: str, text: str = "hello there", **fields: Any) -> dict[str, Any]:
    """A query v1 dict, not validated (tests break it on purpose), with a unique request id.

    ``fields`` are added as they are; ``sent_at_ms`` is ``NOW`` unless given. For a query
    that must be valid, use :func:`fleetserve.client.query.make_query`.
    """
    return {
        "version": 1,
        "request_id": f"r-{next(_offsets)}",
        "bot_id": bot,
        "text": text,
        "sent_at_ms": NOW - 5,
        **fields,
    }


def inbound(
    value: Any,
    key: bytes | None = None,
    *,
    topic: str = "q",
    partition: int = 0,
    offset: int | None = None,
    headers: Headers = (("h", b"\x00\xff"),),
    timestamp_ms: int | None = NOW,
) -> InboundRecord:
    """A consumed record; a dict value is serialized and keyed by its ``bot_id``."""
    raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    if key is None and isinstance(value, dict):
        key = str(value.get("bot_id", "")).encode()
    offset = next(_offsets) if offset is None else offset
    return InboundRecord(topic, partition, offset, key, raw, headers, timestamp_ms)


def reply_value(  # noqa: PLR0913 - one keyword per field a test may care about
    bot_id: str,
    *,
    request_id: str,
    intent: str | None = None,
    confidence: float = 0.9,
    fallback: bool = False,
    stage: str = "real",
    version: str = "v1",
    text: str | None = "a flight to Jeju",
    group: str = "real",
    source: tuple[str, int, int] = ("fleetserve.queries", 0, 1),
    produced_at_ms: int = 1_800_000_000_000,
) -> dict[str, Any]:
    """A reply v1 as a worker publishes it, checked against its schema.

    ``intent`` defaults to what a worker answers: ``fallback`` when the reply falls back.
    """
    intent = intent or ("fallback" if fallback else "book_flight")
    topic, partition, offset = source
    reply = {
        "version": 1,
        "request_id": request_id,
        "bot_id": bot_id,
        "stage": stage,
        "model": {"version": version, "sha256": SHA, "quantization": "int8"},
        "intent": intent,
        "confidence": confidence,
        "top_k": [{"intent": intent, "score": confidence}],
        "fallback": fallback,
        "text": text,
        "timings": {"queued_ms": 1.0, "inference_ms": 0.1, "total_ms": 1.2},
        "worker": {"id": "w1", "group": group},
        "source": {"topic": topic, "partition": partition, "offset": offset, "attempt": 1},
        "produced_at_ms": produced_at_ms,
    }
    validate(MessageKind.REPLY, reply)
    return reply


def dead_letter_value(
    record: InboundRecord,
    failure: Failure,
    *,
    worker: WorkerIdentity = WORKER,
    at_ms: int | None = None,
) -> dict[str, Any]:
    """The dead letter v1 a worker writes for ``record`` and ``failure``."""
    return build_dead_letter(record, failure, worker, now_ms=at_ms or now_ms())
