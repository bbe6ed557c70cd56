"""Read topic state from a cluster and create topics. The only Kafka I/O of this package."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from fleetserve.errors import KafkaUnavailable, TopicProvisionError
from fleetserve.kafka.probe import kafka_error_text
from fleetserve.topics.plan import ObservedTopic
from fleetserve.topics.spec import TopicSpec

logger = logging.getLogger(__name__)

INTERNAL_PREFIX = "__"


def observe_topics(admin: AdminClient, timeout_s: float = 10.0) -> dict[str, ObservedTopic]:
    """Every non-internal topic with partitions, replication and its reported configs."""
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailable(f"listing topics failed: {kafka_error_text(exc)}") from None
    shapes = {
        name: (len(topic.partitions), _replication(topic.partitions.values()))
        for name, topic in metadata.topics.items()
        if not name.startswith(INTERNAL_PREFIX) and topic.error is None
    }
    configs = describe_topic_configs(admin, list(shapes), timeout_s)
    return {
        name: ObservedTopic(name, partitions, replication, configs.get(name, {}))
        for name, (partitions, replication) in shapes.items()
    }


def _replication(partitions: Iterable[object]) -> int:
    return min((len(getattr(p, "replicas", ())) for p in partitions), default=0)


def describe_topic_configs(
    admin: AdminClient, names: list[str], timeout_s: float
) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    futures = admin.describe_configs(resources, request_timeout=timeout_s)
    found: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        try:
            entries = future.result(timeout=timeout_s)
        except KafkaException as exc:
            logger.warning("could not describe configs of %s: %s", resource.name, exc)
            continue
        found[resource.name] = {k: v.value for k, v in entries.items() if v.value is not None}
    return found


def create_topics(
    admin: AdminClient, specs: Iterable[TopicSpec], timeout_s: float = 30.0
) -> list[str]:
    """Create topics; one that appeared meanwhile counts as created by someone else."""
    new_topics = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=s.replication_factor,
            config=dict(s.configs),
        )
        for s in specs
    ]
    if not new_topics:
        return []
    futures = admin.create_topics(
        new_topics, request_timeout=timeout_s, operation_timeout=timeout_s
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            _raise_unless_exists(name, exc)
            logger.info("topic %s was created concurrently; checking it for drift", name)
    return created


def _raise_unless_exists(name: str, exc: KafkaException) -> None:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
        return
    raise TopicProvisionError(f"creating topic {name} failed: {kafka_error_text(exc)}") from None
