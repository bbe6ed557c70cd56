"""Shared fixtures: one real broker per test session plus factories for topics and clients.

Set FLEETSERVE_BOOTSTRAP to run the same suite against an existing cluster
(Apache Kafka) instead of the embedded Tansu broker.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from fleetserve.bots.definition import BotDefinition
from fleetserve.bots.fleet import make_fleet
from fleetserve.broker import EmbeddedBroker
from fleetserve.builder.build import build_bot
from fleetserve.builder.config import BuildConfig
from fleetserve.config import KafkaSettings
from fleetserve.deploy import records
from fleetserve.deploy.log import publish_record
from fleetserve.kafka.clients import admin_client, consumer, producer
from fleetserve.routing import Route
from fleetserve.store import LocalDirectoryStore

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


# Past the ten whole CLINC domains a fleet's bots are small (5-40 intents) and build in
# about 50 ms each, in English and Korean.
SMALL_BOTS_FROM = 10


@dataclass
class BuiltBots:
    """Real bots with real int8/fp32 snapshots in a real local artifact store."""

    store: LocalDirectoryStore
    bots: dict[str, BotDefinition]
    versions: dict[str, str] = field(default_factory=dict)  # bot -> version built with seed 0
    sha256s: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def store_dir(self) -> Path:
        return self.store.root

    @property
    def bot_ids(self) -> list[str]:
        return sorted(self.bots)

    def build(self, bot_id: str, seed: int = 0) -> str:
        """Build (or find) the snapshot of ``bot_id`` trained with ``seed``; its version."""
        result = build_bot(self.bots[bot_id], BuildConfig(seed=seed), self.store)
        assert result.status in ("built", "skipped"), result
        assert result.version is not None
        manifest = self.store.read_manifest(bot_id, result.version)
        self.sha256s[(bot_id, result.version)] = manifest["model"]["sha256"]
        return result.version

    def route(self, bot_id: str, version: str | None = None, stage: str = "real") -> Route:
        version = version or self.versions[bot_id]
        return Route(bot_id, stage, version, self.sha256s[(bot_id, version)])


BotFactory = Callable[..., BuiltBots]


@pytest.fixture(scope="session")
def bot_factory(tmp_path_factory: pytest.TempPathFactory) -> BotFactory:
    """``bot_factory(n=4, seed=3)``: ``n`` small bots built into a fresh store."""

    def make(n: int = 4, seed: int = 3) -> BuiltBots:
        fleet = make_fleet(SMALL_BOTS_FROM + n, seed=seed)[SMALL_BOTS_FROM:]
        built = BuiltBots(
            LocalDirectoryStore(tmp_path_factory.mktemp("store")),
            {bot.bot_id: bot for bot in fleet},
        )
        for bot in fleet:
            built.versions[bot.bot_id] = built.build(bot.bot_id)
        return built

    return make


class Deployer:
    """Publishes deployment records straight to a deployments topic, as the CLI would."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.current: dict[str, dict[str, Any]] = {}

    def deploy(self, route: Route) -> None:
        record = records.deploy(
            self.current.get(route.bot_id),
            bot_id=route.bot_id,
            stage=route.stage,
            model_version=route.model_version,
            sha256=route.sha256,
            actor="tests",
            now_ms=_now_ms(),
        )
        self._publish(record)

    def rollback(self, bot_id: str, stage: str = "real") -> None:
        record = records.rollback(
            self.current.get(bot_id), bot_id=bot_id, stage=stage, actor="tests", now_ms=_now_ms()
        )
        self._publish(record)

    def _publish(self, record: dict[str, Any]) -> None:
        publish_record(self.kafka, self.topic, record)
        self.current[record["bot_id"]] = record


@pytest.fixture
def deployer_factory(kafka_settings: KafkaSettings) -> Callable[[str], Deployer]:
    """``deployer_factory(topic)``: a Deployer appending to that deployments topic."""
    return lambda topic: Deployer(kafka_settings, topic)


def _now_ms() -> int:
    return int(time.time() * 1000)


# The serving harness's fixtures, shared by every module that runs workers; imported last
# because serving_harness itself imports from this module.
from serving_harness import declared, harness, worker_factory  # noqa: E402, F401
