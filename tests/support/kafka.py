"""Fixtures: one real broker per test process, and factories for topics and clients.

Set FLEETSERVE_BOOTSTRAP to run the same suite against an existing cluster (Apache
Kafka) instead of the embedded Tansu broker. Under pytest-xdist each worker process
starts its own embedded broker; tests stay isolated by their own topic names, topic
prefixes and group ids either way.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from fleetserve.broker.embedded import EmbeddedBroker
from fleetserve.config.settings import KafkaSettings
from fleetserve.kafka.clients import admin_client, consumer, producer

BOOTSTRAP_ENV = "FLEETSERVE_BOOTSTRAP"
# A group join takes about half the session timeout on Tansu; keep it short in tests.
TEST_SESSION_TIMEOUT_MS = "6000"

TopicFactory = Callable[..., str]
ProducerFactory = Callable[..., Producer]
ConsumerFactory = Callable[..., Consumer]


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """An external cluster if FLEETSERVE_BOOTSTRAP is set, else a fresh embedded broker."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap)


@pytest.fixture(scope="session")
def admin(kafka_settings: KafkaSettings) -> AdminClient:
    return admin_client(kafka_settings)


@pytest.fixture
def topic_factory(admin: AdminClient) -> Iterator[TopicFactory]:
    """Creates uniquely named topics and deletes them after the test."""
    created: list[str] = []

    def create(
        name: str | None = None,
        partitions: int = 3,
        config: dict[str, str] | None = None,
    ) -> str:
        topic = name or unique_name("topic")
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})]
        )
        futures[topic].result(timeout=30)
        created.append(topic)
        return topic

    yield create
    if created:
        for future in admin.delete_topics(created, operation_timeout=30).values():
            future.result(timeout=30)


@pytest.fixture
def topic_prefix(admin: AdminClient) -> Iterator[str]:
    """A namespace for one test's topics (``--topic-prefix``), deleted afterwards."""
    prefix = f"{unique_name('ns')}."
    yield prefix
    mine = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)]
    if mine:
        for future in admin.delete_topics(mine, operation_timeout=30).values():
            future.result(timeout=30)


@pytest.fixture
def producer_factory(kafka_settings: KafkaSettings) -> Iterator[ProducerFactory]:
    producers: list[Producer] = []

    def make(**overrides: Any) -> Producer:
        client = producer(kafka_settings, {"linger.ms": 5, **overrides})
        producers.append(client)
        return client

    yield make
    for client in producers:
        client.flush(10)


@pytest.fixture
def consumer_factory(kafka_settings: KafkaSettings) -> Iterator[ConsumerFactory]:
    consumers: list[Consumer] = []

    def make(*topics: str, group: str | None = None, **overrides: Any) -> Consumer:
        client = consumer(
            kafka_settings,
            {
                "group.id": group or unique_name("group"),
                "auto.offset.reset": "earliest",
                "session.timeout.ms": TEST_SESSION_TIMEOUT_MS,
                **overrides,
            },
        )
        if topics:
            client.subscribe(list(topics))
        consumers.append(client)
        return client

    yield make
    for client in consumers:
        client.close()
