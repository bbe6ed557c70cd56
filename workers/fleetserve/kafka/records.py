"""A confluent-kafka message as the plain :class:`~fleetserve.core.records.InboundRecord`."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from fleetserve.core.records import InboundRecord


def inbound_record(message: Message) -> InboundRecord:
    kind, timestamp = message.timestamp()
    raw_headers = message.headers() or []
    return InboundRecord(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        headers=tuple(_header(pair) for pair in raw_headers),
        timestamp_ms=None if kind == TIMESTAMP_NOT_AVAILABLE else timestamp,
    )


def _header(pair: Any) -> tuple[str, bytes | None]:
    name, value = pair
    return str(name), value if value is None or isinstance(value, bytes) else str(value).encode()
