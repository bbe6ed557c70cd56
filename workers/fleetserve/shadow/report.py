"""Read a real and a shadow replies topic, start to current end, and compare them per bot.

The read is bounded: a partition is read once the consumer reaches its end, at or past the
end it had when the read started; ``timeout_s`` bounds the whole read.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from fleetserve.client.offsets import watermarks
from fleetserve.config import KafkaSettings
from fleetserve.errors import KafkaUnavailable
from fleetserve.kafka.clients import consumer
from fleetserve.shadow.join import ReplyFacts, ShadowReport, aggregate, join_replies, reply_facts

logger = logging.getLogger(__name__)

POLL_TIMEOUT_S: Final = 0.2

Where = tuple[str, int]


@dataclass
class TopicReading:
    """What one topic held: the comparable replies, and how many records were read or skipped."""

    topic: str
    replies: list[ReplyFacts] = field(default_factory=list)
    records: int = 0
    skipped: int = 0


def shadow_report(
    kafka: KafkaSettings,
    *,
    real_topic: str,
    shadow_topic: str,
    bots: frozenset[str] = frozenset(),
    timeout_s: float = 30.0,
) -> ShadowReport:
    """Compare the replies of ``shadow_topic`` with those of ``real_topic`` (``bots`` only,
    or every bot when empty); :class:`KafkaUnavailable` if the read does not finish in time.
    """
    if real_topic == shadow_topic:
        raise ValueError(f"the real and the shadow topic are both {real_topic}")
    readings = read_reply_facts(kafka, [real_topic, shadow_topic], bots, timeout_s)
    for reading in readings.values():
        if reading.skipped:
            logger.warning(
                "%s: skipped %d of %d records that are not readable replies",
                reading.topic,
                reading.skipped,
                reading.records,
            )
    joined = join_replies(readings[real_topic].replies, readings[shadow_topic].replies)
    return aggregate(joined)


def read_reply_facts(
    kafka: KafkaSettings, topics: Sequence[str], bots: frozenset[str], timeout_s: float
) -> dict[str, TopicReading]:
    """Every committed reply of each topic, from the beginning to its end at the start."""
    deadline = time.monotonic() + timeout_s
    client = consumer(
        kafka,
        {
            "group.id": f"fleetserve-shadow-report-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            # Workers publish in transactions: an aborted batch never happened.
            "isolation.level": "read_committed",
            # A transactional partition ends in a commit marker, which is never delivered:
            # only an end-of-partition event tells that the end was reached.
            "enable.partition.eof": True,
        },
    )
    try:
        ends = _ends(client, topics, timeout_s)
        client.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for topic, p in ends])
        readings = {topic: TopicReading(topic) for topic in topics}
        _drain(client, ends, readings, {bot.encode() for bot in bots}, deadline, timeout_s)
        return readings
    finally:
        client.close()


def _ends(client: Consumer, topics: Sequence[str], timeout_s: float) -> dict[Where, int]:
    """Where each non-empty partition ends now; empty ones need no reading."""
    ends: dict[Where, int] = {}
    for topic in topics:
        for partition, (low, high) in watermarks(client, topic, timeout_s).items():
            if high > low:
                ends[(topic, partition)] = high
    return ends


def _drain(
    client: Consumer,
    ends: dict[Where, int],
    readings: dict[str, TopicReading],
    bot_keys: set[bytes],
    deadline: float,
    timeout_s: float,
) -> None:
    """Read until every partition reported its end; ``ends`` shrinks as they do."""
    while ends:
        if time.monotonic() > deadline:
            behind = ", ".join(f"{topic}[{p}]" for topic, p in sorted(ends))
            raise KafkaUnavailable(
                f"reading replies did not reach the end within {timeout_s:g}s; behind: {behind}"
            )
        message = client.poll(POLL_TIMEOUT_S)
        if message is None:
            continue
        where = (message.topic() or "", message.partition() or 0)
        if message.error() is not None:
            _on_event(message, where, ends)
        elif where in ends:  # a finished partition's newer records wait for the next report
            _collect(readings[where[0]], message, bot_keys)


def _on_event(message: Message, where: Where, ends: dict[Where, int]) -> None:
    """A partition is done at an end-of-partition event at or past its end from the start.

    Only the event counts, never a record's offset against the watermark: Tansu
    under-reports a watermark when the last batch holds several records, and a record's
    offset never reaches a transactional partition's end (its commit marker).
    """
    error = message.error()
    assert error is not None
    if error.code() == KafkaError._PARTITION_EOF:
        if (message.offset() or 0) >= ends.get(where, 0):
            ends.pop(where, None)
        return
    if error.fatal():
        raise KafkaException(error)
    logger.debug("consumer event on %s[%s]: %s", where[0], where[1], error)


def _collect(reading: TopicReading, message: Message, bot_keys: set[bytes]) -> None:
    reading.records += 1
    # The record key is the bot id: other bots' replies are skipped without parsing.
    if bot_keys and message.key() not in bot_keys:
        return
    value = message.value()
    try:
        record = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        record = None
    facts = reply_facts(record) if isinstance(record, dict) else None
    if facts is None:
        reading.skipped += 1
    elif not bot_keys or facts.bot_id.encode() in bot_keys:
        reading.replies.append(facts)
