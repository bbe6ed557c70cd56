"""A consumed Kafka record as plain data, so pure code never touches a client object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

Headers = tuple[tuple[str, bytes | None], ...]
Coordinates = tuple[str, int, int]
"""topic, partition, offset: one record's identity in the log."""


@dataclass(frozen=True, slots=True)
class InboundRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int | None = None

    @property
    def coordinates(self) -> Coordinates:
        return (self.topic, self.partition, self.offset)

    @property
    def where(self) -> str:
        """``topic[partition]@offset``, the form every processing log line uses."""
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @classmethod
    def from_message(cls, message: Message) -> InboundRecord:
        kind, timestamp = message.timestamp()
        raw_headers = message.headers() or []
        return cls(
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
