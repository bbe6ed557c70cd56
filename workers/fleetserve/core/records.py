"""A consumed Kafka record as plain data, so pure code never touches a client object."""

from __future__ import annotations

from typing import NamedTuple

Headers = tuple[tuple[str, bytes | None], ...]
Partition = tuple[str, int]
"""topic, partition."""
Coordinates = tuple[str, int, int]
"""topic, partition, offset: one record's identity in the log."""


class InboundRecord(NamedTuple):
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
