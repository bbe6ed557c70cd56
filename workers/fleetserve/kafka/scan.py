"""Read a topic from the beginning: assign every partition, know when the reader caught up."""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from fleetserve.errors import KafkaUnavailable


def assign_from_beginning(client: Consumer, topic: str, timeout_s: float) -> dict[int, int]:
    """Assign every partition of ``topic`` from offset 0; each partition's high watermark now.

    Raises KafkaUnavailable when the topic does not exist (the message says how to fix it).
    """
    metadata = client.list_topics(topic, timeout=timeout_s)
    partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
    if not partitions:
        raise KafkaUnavailable(f"topic {topic} does not exist; run `fleetserve topics apply`")
    ends: dict[int, int] = {}
    for partition in partitions:
        _low, high = client.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout_s
        )
        ends[partition] = high
    client.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return ends


class CatchUp:
    """Whether a reader from the beginning has caught up with the topic.

    Caught up means: at or past each partition's high watermark observed at assignment
    *and* no record for ``idle_s``. The second condition covers brokers (Tansu) whose
    watermarks under-report on compacted topics; on Apache Kafka it only adds ``idle_s``.
    Times are ``time.monotonic()`` seconds passed in by the caller.
    """

    def __init__(self, ends: Mapping[int, int], idle_s: float, now: float | None = None) -> None:
        self.ends = dict(ends)
        self.idle_s = idle_s
        self._positions = dict.fromkeys(self.ends, -1)
        self._last_record = time.monotonic() if now is None else now

    def observe(self, partition: int, offset: int, now: float) -> None:
        """A record at ``offset`` of ``partition`` was read at ``now``."""
        self._positions[partition] = max(self._positions.get(partition, -1), offset + 1)
        self._last_record = now

    def done(self, now: float) -> bool:
        return self.reached_ends() and now - self._last_record >= self.idle_s

    def reached_ends(self) -> bool:
        return all(end == 0 or self._positions[p] >= end for p, end in self.ends.items())
