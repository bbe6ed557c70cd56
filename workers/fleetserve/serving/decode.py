"""Bytes of a consumed record to a query the worker can route, or the reason it cannot."""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import orjson

from fleetserve.contracts.codec import decode
from fleetserve.contracts.fastquery import proven_query
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.outcome import Failure, Origin
from fleetserve.core.records import InboundRecord
from fleetserve.deadletters import reasons
from fleetserve.errors import ContractError


class DecodedQuery(NamedTuple):
    record: InboundRecord
    query: dict[str, Any]
    stage: str
    deadline_ms: int | None
    origin: Origin | None = None
    """The query as first read when ``record`` came from the retry tier; None: a first try."""

    @property
    def bot_id(self) -> str:
        bot_id: str = self.query["bot_id"]
        return bot_id

    @property
    def request_id(self) -> str:
        request_id: str = self.query["request_id"]
        return request_id

    def failure(self, reason: str, phase: str, message: str, **context: Any) -> Failure:
        """A failure of this query with everything known about it filled in."""
        return Failure(
            reason,
            phase,
            message,
            bot_id=self.bot_id,
            request_id=self.request_id,
            stage=self.stage,
            deadline_ms=self.deadline_ms,
            **context,
        )


def decode_query(
    record: InboundRecord, *, max_bytes: int, default_stage: str, origin: Origin | None = None
) -> DecodedQuery | Failure:
    """Check size, JSON, the query contract and the key; never raises on bad input.

    ``default_stage`` answers a query that names no stage: the worker's own stage, so a
    shadow group on beta answers the same traffic with beta models.
    """
    size = len(record.value or b"") + len(record.key or b"")
    if size > max_bytes:
        return Failure(
            reasons.TOO_LARGE,
            reasons.PHASE_DECODE,
            f"record is {size} bytes, over the worker's cap of {max_bytes}",
        )
    if record.value is None:
        return Failure(reasons.DECODE, reasons.PHASE_DECODE, "record has no value (a tombstone)")
    try:
        proven = proven_query(record.value)  # msgspec: valid, and every integer an int
        query = proven if proven is not None else decode(MessageKind.QUERY, record.value)
    except ContractError as exc:
        return Failure(
            reasons.CONTRACT_REASONS[exc.reason],
            reasons.PHASE_DECODE,
            f"{exc.reason}: {exc}",
            error_type="fleetserve.errors.ContractError",
            **salvage(record.value),
        )
    if record.key != query["bot_id"].encode():
        return Failure(
            reasons.SCHEMA,
            reasons.PHASE_DECODE,
            f"record key {record.key!r} is not the query's bot_id {query['bot_id']!r}; "
            "the key decides the partition, so it must be the bot id",
            bot_id=query["bot_id"],
            request_id=query["request_id"],
        )
    if proven is None:
        _integral_numbers(query)
    stage = query.get("stage", default_stage)
    return DecodedQuery(record, query, stage, deadline_of(query), origin)


_INTEGER_FIELDS: Final = ("version", "sent_at_ms", "ttl_ms", "deadline_ms", "top_k")


def _integral_numbers(query: dict[str, Any]) -> None:
    """Turn ``3.0`` into ``3`` wherever the contract says integer.

    JSON Schema counts an integral float as an integer, so the validator lets ``3.0``
    through; Python's slices and librdkafka's partition argument do not.
    """
    for name in _INTEGER_FIELDS:
        if isinstance(query.get(name), float):
            query[name] = int(query[name])
    reply_to = query.get("reply_to")
    if isinstance(reply_to, dict) and isinstance(reply_to.get("partition"), float):
        reply_to["partition"] = int(reply_to["partition"])


def deadline_of(query: dict[str, Any]) -> int | None:
    """Absolute deadline in epoch ms, from ``deadline_ms`` or ``sent_at_ms + ttl_ms``."""
    if "deadline_ms" in query:
        deadline: int = query["deadline_ms"]
        return deadline
    if "ttl_ms" in query:
        return int(query["sent_at_ms"]) + int(query["ttl_ms"])
    return None


def salvage(value: bytes | None) -> dict[str, Any]:
    """bot_id and request_id of an invalid query when they can be read, for the dead letter."""
    if value is None:
        return {}
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(obj, dict):
        return {}
    return {key: obj[key] for key in ("bot_id", "request_id") if isinstance(obj.get(key), str)}
