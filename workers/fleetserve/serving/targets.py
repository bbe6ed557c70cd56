"""Which topics a query's ``reply_to`` may name, decided before any work is done.

A reply written where it does not belong is worse than a refused query: in a compacted
topic keyed by bot id (another namespace's deployments, say) it would replace that bot's
record once compaction runs. So ``reply_to`` is an allowlist (by default the worker's
replies topic and topics under it), never a fleetserve control topic of any namespace,
never a Kafka internal topic, never a compacted topic, and only a partition that exists.
A refusal is a ``schema`` dead letter whose message says why.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicFacts:
    partitions: int
    compacted: bool | None  # None: the cluster did not say


FactsLookup = Callable[[str], "TopicFacts | None"]
UNCHECKED = TopicFacts(partitions=2**31, compacted=None)  # the cluster could not say


@dataclass(frozen=True)
class ReplyTargets:
    """The allowlist and what the cluster says about a topic; ``problem`` decides."""

    allowed: tuple[str, ...] = ()
    """Glob patterns (``fnmatch``) of topics replies may go to."""
    control_names: Collection[str] = ()
    """Declared names of fleetserve's control topics, without any namespace prefix."""
    facts: FactsLookup | None = None
    """Partition count and cleanup policy of a topic, None when it does not exist."""

    def problem(self, topic: str | None, partition: int | None) -> str | None:
        """Why replies cannot go to ``topic`` (and ``partition``), or None when they can."""
        if topic is None:
            return None
        refusal = _refused_by_name(topic, self.allowed, self.control_names)
        if refusal is not None or self.facts is None:
            return refusal
        facts = self.facts(topic)
        if facts is None:
            return f"reply_to.topic: {topic} does not exist"
        if facts.compacted:
            return (
                f"reply_to.topic: {topic} is a compacted topic; a reply could replace its records"
            )
        if partition is not None and partition >= facts.partitions:
            count = facts.partitions
            return f"reply_to.partition: {topic} has {count} partitions, not {partition + 1}"
        return None


def _refused_by_name(
    topic: str, allowed: tuple[str, ...], control_names: Collection[str]
) -> str | None:
    if topic.startswith("__"):
        return f"reply_to.topic: {topic} is a Kafka internal topic"
    for name in control_names:
        if topic == name or topic.endswith(name):
            return f"reply_to.topic: {topic} is a fleetserve control topic, not a reply topic"
    if not any(fnmatch.fnmatchcase(topic, pattern) for pattern in allowed):
        return (
            f"reply_to.topic: {topic} is not an allowed reply topic "
            f"(allowed: {', '.join(allowed) or 'none'}; see --reply-to-allow)"
        )
    return None


def default_allowlist(replies_topic: str, configured: tuple[str, ...]) -> tuple[str, ...]:
    """The replies topic, topics under it (``<replies>.*``), then the configured patterns."""
    return (replies_topic, f"{replies_topic}.*", *configured)


@dataclass
class CachedFacts:
    """``facts(topic)`` from the cluster, remembered for a while.

    A reply_to topic is usually one of a few callers' inboxes, so one lookup per topic and
    ``ttl_s`` is enough; a missing topic is asked again sooner, since a caller may be
    creating it. When the cluster cannot answer (a stall), the topic passes unchecked: the
    producer still refuses what does not exist, and that record is dead-lettered then.
    """

    lookup: FactsLookup
    ttl_s: float = 30.0
    missing_ttl_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _known: dict[str, tuple[TopicFacts | None, float]] = field(default_factory=dict)

    def __call__(self, topic: str) -> TopicFacts | None:
        now = self.clock()
        known = self._known.get(topic)
        if known is not None and known[1] > now:
            return known[0]
        try:
            facts = self.lookup(topic)
        except (KafkaException, TimeoutError) as exc:
            logger.warning("reply_to topic %s unchecked: %s", topic, exc)
            return UNCHECKED
        ttl_s = self.ttl_s if facts is not None else self.missing_ttl_s
        self._known[topic] = (facts, now + ttl_s)
        return facts


def cluster_lookup(consumer: Consumer, admin: AdminClient, timeout_s: float = 5.0) -> FactsLookup:
    """Partitions from the consumer's metadata (a consumer never auto-creates topics) and
    the cleanup policy from the topic's configuration."""

    def lookup(topic: str) -> TopicFacts | None:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            code = found.error.code() if found is not None and found.error else None
            if code not in (None, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                logger.warning("metadata of reply_to topic %s: %s", topic, found.error)
            return None
        return TopicFacts(len(found.partitions), _compacted(admin, topic, timeout_s))

    return lookup


def _compacted(admin: AdminClient, topic: str, timeout_s: float) -> bool | None:
    resource = ConfigResource("topic", topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout_s)
    except (KafkaException, TimeoutError) as exc:
        logger.warning("configuration of reply_to topic %s unknown: %s", topic, exc)
        return None
    policy = configs.get("cleanup.policy")
    # A broker may list only what was set; Kafka's default policy is delete.
    return policy is not None and "compact" in (policy.value or "")
