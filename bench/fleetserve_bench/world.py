"""The benchmark's world: an embedded broker, declared topics, a built and deployed fleet.

Everything runs on this machine, the broker included, as the issue asks; the fleet is
built once per (size, seed) into a cache folder and reused, since building 1,000 bots is
not what is being measured.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetserve.bots.definition import BotDefinition
from fleetserve.bots.fleet import make_fleet
from fleetserve.broker.embedded import EmbeddedBroker, free_loopback_port
from fleetserve.builder.config import BuildConfig
from fleetserve.config.settings import KafkaSettings
from fleetserve.core.route import Route
from fleetserve.demo.run import build_fleet, deploy_all, spawn_worker
from fleetserve.kafka.clients import admin_client
from fleetserve.store.local import LocalDirectoryStore
from fleetserve.topics.apply import apply_topics
from fleetserve.topics.loader import load_topics
from fleetserve.topics.spec import TopicSet

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "fleetserve-bench"


def fleet_store_dir(
    bots: int, seed: int, config: BuildConfig | None = None, cache_dir: Path | None = None
) -> Path:
    """A cached fleet's store, one per build configuration and recipe.

    A store shared across recipes would hold several snapshots per bot, and the benches
    serve each bot's last version by name, i.e. a mix of recipes.
    """
    fingerprint = (config or BuildConfig()).fingerprint()[:12]
    return (cache_dir or default_cache_dir()) / f"store-{bots}-{seed}-{fingerprint}"


def newest_route(store: LocalDirectoryStore, bot_id: str, stage: str = "real") -> Route:
    """The route to ``bot_id``'s last stored snapshot (a bench fleet store holds one recipe)."""
    version = store.versions(bot_id)[-1]
    sha = store.read_manifest(bot_id, version)["model"]["sha256"]
    return Route(bot_id, stage, version, sha)


@dataclass
class BenchWorld:
    """A running broker with topics and a deployed fleet; workers come and go per scenario."""

    broker: EmbeddedBroker
    kafka: KafkaSettings
    topics: TopicSet
    store_dir: Path
    bot_ids: list[str]
    texts: dict[str, list[str]]
    work_dir: Path
    workers_started: int = 0

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def broker_pid(self) -> int:
        return self.broker.pid or 0

    def namespace(self, prefix: str) -> TopicSet:
        """Every declared topic again under ``prefix``, with the whole fleet deployed there.

        Each system under test gets its own namespace, so it can be started and settled
        before its queries exist and still answer exactly the same queries as the others.
        """
        topics = load_topics(None, "local", prefix)
        apply_topics(admin_client(self.kafka), topics)
        deploy_all(
            self.kafka, topics.name("deployments"), LocalDirectoryStore(self.store_dir), logger.info
        )
        return topics

    def spawn_worker(
        self, group: str, extra: Sequence[str] = (), prefix: str = ""
    ) -> tuple[subprocess.Popen[bytes], int, Path]:
        """One more worker of ``group`` on the topics under ``prefix``; not yet ready."""
        self.workers_started += 1
        port = free_loopback_port()
        log = self.work_dir / f"worker-{self.workers_started}.log"
        process = spawn_worker(
            self.bootstrap,
            self.store_dir,
            self.workers_started,
            port,
            log,
            worker_id=f"bench-{self.workers_started}",
            global_args=["--group", group, "--topic-prefix", prefix, "--log-level", "WARNING"],
            worker_args=extra,
        )
        return process, port, log


def ensure_fleet(
    bots: int, seed: int, store_dir: Path, config: BuildConfig | None = None
) -> list[BotDefinition]:
    """The fleet of ``bots`` drawn with ``seed``, built into ``store_dir`` unless it is there."""
    fleet = make_fleet(bots, seed=seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fleetserve-bench-fleet-") as work:
        build_fleet(
            fleet, Path(work) / "fleet", store_dir, lambda line: logger.info("%s", line), config
        )
    logger.info("fleet of %d ready in %.1f s", bots, time.perf_counter() - started)
    return fleet


@contextmanager
def bench_world(bots: int, seed: int, cache_dir: Path | None = None) -> Iterator[BenchWorld]:
    with ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        kafka = KafkaSettings(broker.bootstrap_servers)
        topics = load_topics(None, "local", "")
        apply_topics(admin_client(kafka), topics)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fleetserve-bench-")))
        store_dir = fleet_store_dir(bots, seed, cache_dir=cache_dir)
        fleet = ensure_fleet(bots, seed, store_dir)
        deploy_all(kafka, topics.name("deployments"), LocalDirectoryStore(store_dir), logger.info)
        texts = {bot.bot_id: [u.text for u in bot.utterances] for bot in fleet}
        yield BenchWorld(
            broker, kafka, topics, store_dir, [bot.bot_id for bot in fleet], texts, work
        )
