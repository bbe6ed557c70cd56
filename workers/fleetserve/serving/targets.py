"""Partition counts of reply_to topics, from cluster metadata, remembered for a while."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException

logger = logging.getLogger(__name__)

Lookup = Callable[[str], int | None]
UNCHECKED = 2**31  # more partitions than any topic has: every partition passes


class PartitionCounts:
    """``counts(topic)``: its partition count, or None when the cluster has no such topic.

    A reply_to topic is usually one of a few callers' inboxes, so one metadata request per
    topic and ``ttl_s`` is enough; a missing topic is asked again sooner, since a caller
    may be creating it.
    """

    def __init__(
        self,
        lookup: Lookup,
        *,
        ttl_s: float = 30.0,
        missing_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._missing_ttl_s = missing_ttl_s
        self._clock = clock
        self._known: dict[str, tuple[int | None, float]] = {}

    def __call__(self, topic: str) -> int | None:
        now = self._clock()
        known = self._known.get(topic)
        if known is not None and known[1] > now:
            return known[0]
        try:
            count = self._lookup(topic)
        except KafkaException as exc:
            # The cluster cannot say right now (a stall): do not fail the query on that;
            # the producer still refuses what does not exist, and that pass is re-read.
            logger.warning("reply_to topic %s unchecked: %s", topic, exc)
            return UNCHECKED
        ttl_s = self._ttl_s if count is not None else self._missing_ttl_s
        self._known[topic] = (count, now + ttl_s)
        return count


def metadata_lookup(consumer: Consumer, timeout_s: float = 5.0) -> Lookup:
    """Partition counts from the consumer's metadata (a consumer never auto-creates topics)."""

    def lookup(topic: str) -> int | None:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            code = found.error.code() if found is not None and found.error else None
            if code not in (None, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                logger.warning("metadata of reply_to topic %s: %s", topic, found.error)
            return None
        return len(found.partitions)

    return lookup
