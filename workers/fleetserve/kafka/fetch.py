"""Fetch one record by its coordinates, if the topic still holds it."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import KafkaError, TopicPartition

from fleetserve.config import KafkaSettings
from fleetserve.kafka.clients import consumer
from fleetserve.kafka.records import InboundRecord


def fetch_record(
    kafka: KafkaSettings, topic: str, partition: int, offset: int, timeout_s: float = 10.0
) -> InboundRecord | None:
    """The record at ``topic[partition]@offset``, or None when it is gone or never was.

    Gone means: retention deleted it (the offset is below the log start), or the offset
    lies past the end, or the record there was compacted away.
    """
    client = consumer(
        kafka,
        {
            "group.id": f"fleetserve-fetch-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",  # an offset out of range is an answer, not a reset
            "enable.partition.eof": True,
        },
    )
    try:
        client.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = client.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() in (KafkaError._PARTITION_EOF, KafkaError._AUTO_OFFSET_RESET):
                    return None
                continue
            found = message.offset()
            return InboundRecord.from_message(message) if found == offset else None
        return None
    finally:
        client.close()
