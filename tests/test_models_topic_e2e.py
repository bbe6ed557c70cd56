"""compose.yaml's topology on the development broker: models travel only through Kafka.

A third process builds a fleet into its own folder and publishes and deploys it; two
worker processes, each in its own working directory with an empty disk and `--store
kafka`, answer every query. Then the failures a worker meets on the models topic: a
snapshot missing, truncated or with another sha256 is a dead letter with its model
context; a topic it cannot reach sends loads to the retry tier, while what its disk cache
holds is still served.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Message, Producer

from fleetserve.bots.fleet import make_fleet
from fleetserve.bots.writer import write_fleet
from fleetserve.broker.embedded import free_loopback_port
from fleetserve.client.query import make_query
from fleetserve.config.serving import ServingSettings
from fleetserve.config.settings import KafkaSettings, Settings
from fleetserve.demo.run import http_ok, stop_workers
from fleetserve.deploy import records
from fleetserve.deploy.log import publish_record, read_deployments
from fleetserve.deploy.placement import PublishingPlacement
from fleetserve.kafka.clients import producer
from fleetserve.serving.worker import Worker, WorkerTopics
from fleetserve.store.base import SnapshotRequest
from fleetserve.store.disk_cache import DiskCache
from fleetserve.store.frame import RECORD_HEADROOM, ChunkRecord, split_snapshot
from fleetserve.store.kafka_store import KafkaModelStore, ModelTopics
from fleetserve.topics.spec import TopicSet
from support.bots import SMALL_BOTS_FROM, BotFactory, BuiltBots
from support.kafka import (
    TEST_SESSION_TIMEOUT_MS,
    ConsumerFactory,
    ProducerFactory,
    unique_name,
)
from support.kafka_log import read_committed_log
from support.serving import assert_exactly_once, clean_env, collect, state_dir, wait_until

pytestmark = pytest.mark.kafka

BOTS = 4


def fleetserve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "fleetserve", *args],
        cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def spawn_worker(
    bootstrap: str, prefix: str, home: Path, worker_id: str, port: int
) -> subprocess.Popen[bytes]:
    """A worker as compose runs it: only the bootstrap servers, its own working directory."""
    home.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "fleetserve", "--bootstrap", bootstrap, "--topic-prefix", prefix,
        "--store", "kafka", "--group", f"{prefix}real", "--worker-id", worker_id,
        "worker", "--ops-port", str(port), "--session-timeout-ms", TEST_SESSION_TIMEOUT_MS,
    ]  # fmt: skip
    with (home / "worker.log").open("ab") as log:
        return subprocess.Popen(argv, cwd=home, env=clean_env(), stdout=log, stderr=log)


def send(client: Producer, topic: str, bot: str, text: str, partition: int) -> str:
    query = make_query(bot, text)
    client.produce(topic, key=bot.encode(), value=orjson.dumps(query), partition=partition)
    request_id: str = query["request_id"]
    return request_id


def flush_delivered(client: Producer, failures: list[str]) -> None:
    """The test's own queries all reached the broker: a lost one is not the workers'."""
    assert client.flush(30) == 0, "the test's queries were not all delivered in 30 s"
    assert not failures, f"the broker refused test queries: {failures[:3]}"


def fates(bootstrap: str, topics: list[str], request_ids: set[str]) -> dict[str, list[str]]:
    """Where each request id's outcome is in the raw logs: committed, aborted or still in an
    open transaction (hidden from ``read_committed`` readers), or nowhere."""
    found: dict[str, list[str]] = {rid: [] for rid in request_ids}
    for topic in topics:
        log = read_committed_log(bootstrap, topic)
        for fate, held in (("committed", log.committed), ("aborted", log.aborted),
                           ("open", log.open)):  # fmt: skip
            for record in held:
                rid = orjson.loads(record.value or b"{}").get("request_id")
                if rid in found:
                    found[rid].append(f"{fate} {topic}[{record.partition}]@{record.offset}")
    return found


def worker_logs(homes: list[Path], lines: int = 40) -> str:
    """What each worker logged last, for a failure message."""
    tails = []
    for home in homes:
        text = (home / "worker.log").read_text(errors="replace").splitlines()
        tails.append(
            f"--- {home.name}/worker.log (last {lines} lines)\n" + "\n".join(text[-lines:])
        )
    return "\n".join(tails)


def produce_one(kafka: KafkaSettings, topic: str, chunk: ChunkRecord) -> tuple[str, int, int]:
    """One record on partition 0 of ``topic``; its coordinates."""
    where: list[tuple[str, int, int]] = []

    def delivered(_error: object, message: Message) -> None:
        where.append((message.topic() or "", message.partition() or 0, message.offset() or 0))

    client = producer(kafka)
    client.produce(
        topic, key=chunk.key.encode(), value=chunk.value, headers=list(chunk.headers),
        partition=0, on_delivery=delivered,
    )  # fmt: skip
    client.flush(10)
    return where[0]


def ready(port: int) -> bool:
    return http_ok(f"http://127.0.0.1:{port}/readyz")


def cached_files(home: Path) -> set[str]:
    """The sha256 of every snapshot in a worker's disk cache (default place, its own cwd)."""
    return {path.stem for path in (home / ".fleetserve" / "models").glob("*/*.snap")}


def test_two_workers_with_empty_disks_serve_what_a_third_process_built_and_deployed(
    kafka_bootstrap: str,
    declared: TopicSet,
    tmp_path: Path,
    producer_factory: ProducerFactory,
    consumer_factory: ConsumerFactory,
) -> None:
    builder = tmp_path / "builder"
    builder.mkdir()
    write_fleet(make_fleet(SMALL_BOTS_FROM + BOTS, seed=61)[SMALL_BOTS_FROM:], builder / "fleet")
    fleetserve("--store", "snapshots", "build", "fleet", "--workers", "1", cwd=builder)
    common = ("--bootstrap", kafka_bootstrap, "--topic-prefix", declared.prefix)
    published = fleetserve(
        *common, "--store", "snapshots", "publish", "--deploy", "real", cwd=builder
    )
    assert f"{BOTS} sent" in published.stdout
    assert f"deployed {BOTS} bots on real" in published.stdout

    homes = [tmp_path / "machine-1", tmp_path / "machine-2"]
    ports = [free_loopback_port(), free_loopback_port()]
    workers = [
        spawn_worker(kafka_bootstrap, declared.prefix, home, f"w{i}", port)
        for i, (home, port) in enumerate(zip(homes, ports, strict=True), start=1)
    ]
    try:
        for port in ports:
            wait_until(partial(ready, port), 60, f"the worker on port {port} was not ready")
        table = read_deployments(KafkaSettings(kafka_bootstrap), declared.name("deployments"))
        deployed = {bot: r["stages"]["real"] for bot, r in table.items()}
        assert len(deployed) == BOTS
        assert all(e["location"]["topic"] == declared.name("models") for e in deployed.values())
        failures: list[str] = []

        def delivered(error: object, _message: Message) -> None:
            if error is not None:
                failures.append(str(error))

        client = producer_factory(**{"linger.ms": 0, "on_delivery": delivered})
        queries = declared.name("queries")
        # Every bot on every partition: both workers must load every model.
        sent = {
            send(client, queries, bot, f"question {n}", partition=n % 12): (bot, n % 12)
            for bot in deployed
            for n in range(24)
        }
        expected = {request_id: bot for request_id, (bot, _partition) in sent.items()}
        flush_delivered(client, failures)
        outputs = [declared.name("replies"), declared.name("dead_letters")]
        outcomes = collect(consumer_factory, outputs, set(expected))
        missing = expected.keys() - outcomes.keys()
        if missing:  # say where they are, so a rare failure explains itself
            where = fates(kafka_bootstrap, outputs, missing)
            exits = [worker.poll() for worker in workers]  # None: still running
            pytest.fail(
                f"no outcome read for {len(missing)} queries: "
                f"{ {rid: (sent[rid], where[rid]) for rid in sorted(missing)} }; "
                f"worker exit codes {exits}\n{worker_logs(homes)}"
            )
        assert_exactly_once(outcomes, set(expected))
        answered_by = set()
        for request_id, bot in expected.items():
            ((kind, reply),) = outcomes[request_id]
            assert kind == "reply", reply
            assert reply["model"]["sha256"] == deployed[bot]["sha256"]
            answered_by.add(reply["worker"]["id"])
        assert answered_by == {"w1", "w2"}
        shas = {entry["sha256"] for entry in deployed.values()}
        for home in homes:
            assert set(cached_files(home)) == shas  # each fetched every model once, verified
            assert "heap settled" in (home / "worker.log").read_text()  # the CLI froze it
            assert not (home / "artifacts").exists()
            assert not (home / "snapshots").exists()

    finally:
        stop_workers(workers, lambda _line: None)


# -- failures, with in-process workers ---------------------------------------------------------


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=5, seed=67)


@dataclasses.dataclass
class World:
    kafka: KafkaSettings
    declared: TopicSet
    built: BuiltBots
    models: KafkaModelStore
    producer: Producer
    consumers: ConsumerFactory
    current: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def deploy(self, bot: str, version: str, sha256: str, location: Any = None) -> None:
        record = records.deploy(
            self.current.get(bot), bot_id=bot, stage="real", model_version=version,
            sha256=sha256, actor="tests", now_ms=1_800_000_000_000,
        )  # fmt: skip
        records.locate(record, "real", location)
        publish_record(self.kafka, self.declared.name("deployments"), record)
        self.current[bot] = record

    def publish(self, bot: str) -> SnapshotRequest:
        version = self.built.versions[bot]
        [placed] = PublishingPlacement(self.built.store, self.models).place_many([(bot, version)])
        return SnapshotRequest(bot, version, placed.sha256, placed.location)

    def ask(self, bots: list[str], n: int = 5) -> dict[str, str]:
        sent = {
            send(self.producer, self.declared.name("queries"), bot, f"hi {i}", 0): bot
            for bot in bots
            for i in range(n)
        }
        self.producer.flush(10)
        return sent


@pytest.fixture
def world(
    kafka_settings: KafkaSettings,
    declared: TopicSet,
    built: BuiltBots,
    producer_factory: ProducerFactory,
    consumer_factory: ConsumerFactory,
) -> Iterator[World]:
    models = KafkaModelStore(kafka_settings, ModelTopics.from_declared(declared))
    yield World(
        kafka_settings,
        declared,
        built,
        models,
        producer_factory(**{"linger.ms": 0}),
        consumer_factory,
    )
    models.close()


@pytest.fixture
def serve(world: World, tmp_path: Path) -> Iterator[Any]:
    """Start an in-process worker reading the models topic through ``kafka``."""
    running: list[tuple[Worker, threading.Thread, KafkaModelStore]] = []

    def start(kafka: KafkaSettings | None = None, **serving: Any) -> Worker:
        store = KafkaModelStore(
            kafka or world.kafka,
            world.models.topics,
            disk_cache=DiskCache(tmp_path / "disk", 10**9),
            fetch_timeout_s=serving.pop("fetch_timeout_s", 5.0),
        )
        settings = Settings(
            kafka=world.kafka,
            group_id=f"{world.declared.prefix}real",
            worker_id=unique_name("w"),
            serving=ServingSettings(
                ops_port=0,
                session_timeout_ms=int(TEST_SESSION_TIMEOUT_MS),
                state_dir=str(state_dir(world.declared.prefix)),
                **serving,
            ),
        )
        worker = Worker(settings, WorkerTopics.from_declared(world.declared, None), store=store)
        ready = threading.Event()
        thread = threading.Thread(target=worker.run, kwargs={"ready": ready}, daemon=True)
        thread.start()
        assert ready.wait(60), "worker never subscribed"
        wait_until(lambda: worker.health().ready, 60, "worker never became ready")
        running.append((worker, thread, store))
        return worker

    yield start
    for worker, thread, store in running:
        worker.request_stop()
        thread.join(30)
        store.close()


def letters(world: World, expected: dict[str, str]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    topics = [world.declared.name("replies"), world.declared.name("dead_letters")]
    outcomes = collect(world.consumers, topics, set(expected))
    assert_exactly_once(outcomes, set(expected))
    by_bot: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for request_id, bot in expected.items():
        by_bot.setdefault(bot, []).append(outcomes[request_id][0])
    return by_bot


def test_missing_truncated_and_altered_snapshots_are_dead_letters_with_model_context(
    world: World, serve: Any
) -> None:
    good, gone, unindexed, altered, truncated = world.built.bot_ids
    healthy = world.publish(good)
    world.deploy(good, healthy.version, healthy.sha256, healthy.location)
    # Past the end of its partition (a topic that lost it).
    lost = world.publish(gone)
    assert lost.location is not None
    world.deploy(gone, lost.version, lost.sha256, (*lost.location[:2], 10**6))
    # An older record without a location, for a version the index never had.
    world.deploy(unindexed, "0123456789abcdef", "a" * 64)
    # The right place, but the deployment names other bytes.
    other = world.publish(altered)
    world.deploy(altered, other.version, "b" * 64, other.location)
    # Only the first chunk of three made it (a publisher died half way).
    cut = world.built
    version = cut.versions[truncated]
    sha = cut.sha256s[(truncated, version)]
    head, *_ = split_snapshot(
        truncated, version, orjson.dumps(cut.store.read_manifest(truncated, version)),
        cut.store.read_model(truncated, version), sha, RECORD_HEADROOM + 50_000,
    )  # fmt: skip
    where = produce_one(world.kafka, world.models.topics.models, head)
    world.deploy(truncated, version, sha, where)

    serve()
    outcomes = letters(world, world.ask(world.built.bot_ids))
    assert {kind for kind, _ in outcomes[good]} == {"reply"}
    expected = {
        gone: ("model_missing", "past the end"),
        unindexed: ("model_missing", "has no entry"),
        altered: ("model_corrupt", "the deployment says"),
        truncated: ("model_corrupt", "truncated"),
    }
    for bot, (reason, words) in expected.items():
        for kind, letter in outcomes[bot]:
            assert kind == "dead_letter"
            assert (letter["reason"], letter["phase"], letter["attempts"]) == (reason, "load", 1)
            assert words in letter["message"]
            live = world.current[bot]["stages"]["real"]
            assert letter["model"] == {
                "version": live["model_version"],
                "sha256": live["sha256"],
                "stage": "real",
            }


def test_an_unreachable_models_topic_delays_only_new_loads(
    world: World, serve: Any, tmp_path: Path
) -> None:
    cached, uncached = world.built.bot_ids[:2]
    first = world.publish(cached)
    second = world.publish(uncached)
    world.deploy(cached, first.version, first.sha256, first.location)
    world.deploy(uncached, second.version, second.sha256, second.location)
    # An earlier run of this worker left the first bot's snapshot on its disk.
    DiskCache(tmp_path / "disk", 10**9).put(
        first.sha256, orjson.dumps(world.models.read_snapshot(first).manifest),
        world.models.read_snapshot(first).model,
    )  # fmt: skip
    nowhere = KafkaSettings(f"127.0.0.1:{free_loopback_port()}")  # the models topic is down
    worker = serve(
        nowhere, fetch_timeout_s=0.5, retry_base_ms=200, retry_max_ms=400, retry_max_attempts=3
    )
    outcomes = letters(world, world.ask([cached, uncached]))
    assert {kind for kind, _ in outcomes[cached]} == {"reply"}
    for kind, letter in outcomes[uncached]:
        assert kind == "dead_letter"
        assert (letter["reason"], letter["attempts"]) == ("retries_exhausted", 3)
        assert "did not arrive" in letter["message"]
        assert letter["model"]["sha256"] == second.sha256
    retried = worker.registry.get_sample_value(
        "fleetserve_retries_total", {"reason": "model_load_failed"}
    )
    assert retried is not None
    assert retried >= 5 * 2  # each query went through the retry tier before it gave up
