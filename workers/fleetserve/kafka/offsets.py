"""A topic's partitions and their end offsets, asked of the cluster within a bound."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

from fleetserve.config.settings import KafkaSettings
from fleetserve.errors import KafkaUnavailable
from fleetserve.kafka.clients import ends_reader
from fleetserve.kafka.probe import kafka_error_text


def topic_partitions(client: Consumer, topic: str, timeout_s: float) -> list[int]:
    """The partition ids of ``topic``; :class:`KafkaUnavailable` if it cannot be used."""
    try:
        metadata = client.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"no metadata for topic {topic} within {timeout_s:g}s ({kafka_error_text(exc)})"
        ) from None
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        raise KafkaUnavailable(
            f"topic {topic} does not exist; create it with `fleetserve topics apply`"
        )
    return sorted(described.partitions)


def watermarks(client: Consumer, topic: str, timeout_s: float) -> dict[int, tuple[int, int]]:
    """Each partition's (low, high) watermark now, as ``client``'s isolation level answers:
    the oldest retained offset and the end. A reader that must see the whole log asks a
    :func:`~fleetserve.kafka.clients.ends_reader` instead (or calls :func:`log_ends`):
    ``devbroker.ENDS_ISOLATION`` says why."""
    marks: dict[int, tuple[int, int]] = {}
    for partition in topic_partitions(client, topic, timeout_s):
        try:
            marks[partition] = client.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s
            )
        except KafkaException as exc:
            raise KafkaUnavailable(
                f"no offsets for {topic}[{partition}] within {timeout_s:g}s "
                f"({kafka_error_text(exc)})"
            ) from None
    return marks


def log_ends(
    kafka: KafkaSettings, topics: Sequence[str], timeout_s: float
) -> dict[str, dict[int, tuple[int, int]]]:
    """:func:`watermarks` of each of ``topics``, asked without isolation by one short-lived
    client: the end is where the next record goes, whether or not a transaction below it is
    still open (``devbroker.ENDS_ISOLATION``; a client per topic cost about 20 ms each).

    A reader that starts at such an end, rather than assigning OFFSET_END (which librdkafka
    resolves later, at its first fetch), misses no record written in between.
    """
    client = ends_reader(kafka)
    try:
        return {topic: watermarks(client, topic, timeout_s) for topic in topics}
    finally:
        client.close()
