"""Read what a system under test produced: one point per reply, with its timestamps."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from fleetserve.config.settings import KafkaSettings
from fleetserve.kafka.clients import consumer


@dataclass(frozen=True, slots=True)
class ReplyPoint:
    produced_ms: float
    latency_ms: float | None  # None when the output carries no send time (the relay)


def fleetserve_point(message: Message) -> ReplyPoint:
    reply = orjson.loads(message.value() or b"{}")
    return ReplyPoint(float(reply["produced_at_ms"]), float(reply["timings"]["total_ms"]))


def baseline_point(message: Message) -> ReplyPoint:
    reply = orjson.loads(message.value() or b"{}")
    produced = float(reply["produced_at_ms"])
    return ReplyPoint(produced, max(produced - float(reply["sent_at_ms"]), 0.0))


def relay_point(message: Message) -> ReplyPoint:
    return ReplyPoint(float(message.timestamp()[1]), None)


def read_points(
    kafka: KafkaSettings,
    topic: str,
    expected: int,
    parse: Callable[[Message], ReplyPoint],
    timeout_s: float,
) -> list[ReplyPoint]:
    """Read ``topic`` from the beginning until ``expected`` records or ``timeout_s``."""
    reader = consumer(
        kafka,
        {
            "group.id": f"bench-reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 64 * 1024 * 1024,
        },
    )
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        points: list[ReplyPoint] = []
        deadline = time.monotonic() + timeout_s
        while len(points) < expected and time.monotonic() < deadline:
            for message in reader.consume(10_000, 0.2):
                if message.error() is None:
                    points.append(parse(message))
        return points
    finally:
        reader.close()
