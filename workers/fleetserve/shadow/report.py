"""Read a real and a shadow replies topic, start to current end, and compare them per bot.

The read is bounded (kafka/scan.py): each partition up to its end when the read started;
``timeout_s`` bounds the whole read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field

import orjson

from fleetserve.config.settings import KafkaSettings
from fleetserve.core.records import InboundRecord
from fleetserve.kafka.scan import read_to_end
from fleetserve.shadow.join import ReplyFacts, ShadowReport, aggregate, join_replies, reply_facts

logger = logging.getLogger(__name__)


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
    readings = {topic: TopicReading(topic) for topic in topics}
    bot_keys = {bot.encode() for bot in bots}
    with closing(read_to_end(kafka, topics, timeout_s=timeout_s)) as records:
        for record in records:
            _collect(readings[record.topic], record, bot_keys)
    return readings


def _collect(reading: TopicReading, record: InboundRecord, bot_keys: set[bytes]) -> None:
    reading.records += 1
    # The record key is the bot id: other bots' replies are skipped without parsing.
    if bot_keys and record.key not in bot_keys:
        return
    try:
        reply = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        reply = None
    facts = reply_facts(reply) if isinstance(reply, dict) else None
    if facts is None:
        reading.skipped += 1
    elif not bot_keys or facts.bot_id.encode() in bot_keys:
        reading.replies.append(facts)
