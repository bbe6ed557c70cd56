"""Ask a cluster for metadata within a bounded time."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException

from fleetserve.config.settings import KafkaSettings
from fleetserve.errors import KafkaUnavailable
from fleetserve.kafka.clients import FAST_RECONNECT, admin_client


@dataclass(frozen=True)
class ClusterInfo:
    cluster_id: str | None
    brokers: tuple[str, ...]
    topic_count: int


def describe_cluster(kafka: KafkaSettings, timeout_s: float = 10.0) -> ClusterInfo:
    """Metadata from the cluster, or :class:`KafkaUnavailable` naming the address.

    Never waits longer than ``timeout_s``: an unreachable bootstrap server is an
    error an operator can act on, not a hang.
    """
    admin = admin_client(kafka, FAST_RECONNECT)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"Kafka at {kafka.bootstrap_servers} did not answer a metadata request "
            f"within {timeout_s:g}s ({kafka_error_text(exc)}); "
            "check the address (--bootstrap / FLEETSERVE_BOOTSTRAP) and that the broker is up"
        ) from None
    brokers = tuple(sorted(f"{b.host}:{b.port}" for b in metadata.brokers.values()))
    return ClusterInfo(metadata.cluster_id, brokers, len(metadata.topics))


def kafka_error_text(exc: KafkaException) -> str:
    """librdkafka's own words for an error, without the KafkaError{...} wrapper."""
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
