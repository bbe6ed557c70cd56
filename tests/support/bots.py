"""Fixtures: real bots built into a real local store, and a deployer of their snapshots."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleetserve.bots.definition import BotDefinition
from fleetserve.bots.fleet import make_fleet
from fleetserve.builder.build import build_bot
from fleetserve.builder.config import BuildConfig
from fleetserve.config.settings import KafkaSettings
from fleetserve.core.route import Route
from fleetserve.deploy import records
from fleetserve.deploy.log import publish_record
from fleetserve.models.config import QuantizationMode
from fleetserve.store.local import LocalDirectoryStore

# Past the ten whole CLINC domains a fleet's bots are small (5-40 intents) and build in
# about 50 ms each, in English and Korean.
SMALL_BOTS_FROM = 10


@dataclass
class BuiltBots:
    """Real bots with real int8 and int4 snapshots in a real local artifact store.

    Every other bot's table is int4 (``--quantization auto`` keeps small bots int8), so
    every test that serves bots serves both formats, as a fleet with large bots does.
    """

    store: LocalDirectoryStore
    bots: dict[str, BotDefinition]
    versions: dict[str, str] = field(default_factory=dict)  # bot -> version built with seed 0
    sha256s: dict[tuple[str, str], str] = field(default_factory=dict)
    quantization: dict[str, QuantizationMode] = field(default_factory=dict)

    @property
    def store_dir(self) -> Path:
        return self.store.root

    @property
    def bot_ids(self) -> list[str]:
        return sorted(self.bots)

    def build(self, bot_id: str, seed: int = 0) -> str:
        """Build (or find) the snapshot of ``bot_id`` trained with ``seed``; its version."""
        config = BuildConfig(seed=seed, quantization=self.quantization.get(bot_id, "auto"))
        result = build_bot(self.bots[bot_id], config, self.store)
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
        for index, bot in enumerate(fleet):
            built.quantization[bot.bot_id] = "int4" if index % 2 else "auto"
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
