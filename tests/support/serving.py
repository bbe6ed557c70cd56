"""The serving test harness: declared topics, in-process workers, outcome counting.

Shared by every test that runs real workers against the session broker. A test module
using ``harness`` defines its own module-scoped ``built`` fixture (its bots); conftest.py
re-exports the fixtures below.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from fleetserve.cli.main import cli
from fleetserve.client.query import make_query
from fleetserve.config.serving import ServingSettings
from fleetserve.config.settings import KafkaSettings, Settings, Stage
from fleetserve.kafka.clients import admin_client
from fleetserve.serving.worker import Worker, WorkerTopics
from fleetserve.topics.apply import apply_topics
from fleetserve.topics.loader import load_topics
from fleetserve.topics.spec import TopicSet
from support.bots import BuiltBots, Deployer
from support.kafka import TEST_SESSION_TIMEOUT_MS, ConsumerFactory, ProducerFactory, unique_name

Outcomes = dict[str, list[tuple[str, dict[str, Any]]]]


@pytest.fixture
def declared(kafka_settings: KafkaSettings, topic_prefix: str) -> TopicSet:
    topics = load_topics(None, "local", topic_prefix)
    apply_topics(admin_client(kafka_settings), topics)
    return topics


class RunningWorker:
    def __init__(self, worker: Worker, thread: threading.Thread) -> None:
        self.worker = worker
        self.thread = thread

    def stop(self) -> None:
        self.worker.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "worker did not stop within 30 s"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.worker.ops.port}{path}"


WorkerFactory = Callable[..., RunningWorker]
TEST_FETCH_WAIT_MS = 50
"""The suite's workers poll at 50 ms, not the 5 ms default (devbroker.EMPTY_FETCH_WAIT_MS):
one idle worker's 5 ms fetches cost the embedded broker 6.0 CPU-s in 20 s (0.3 of a core;
1.7 at 100 ms), and up to six test processes share 2 cores. A reply waits at most 50 ms
more per hop; no test here measures latency, the benchmarks run the default."""


@pytest.fixture
def worker_factory(
    kafka_settings: KafkaSettings, declared: TopicSet, built: BuiltBots
) -> Iterator[WorkerFactory]:
    running: list[RunningWorker] = []

    def start(
        group: str = "serve-real",
        stage: str = "real",
        replies_topic: str | None = None,
        **serving: Any,
    ) -> RunningWorker:
        settings = Settings(
            kafka=kafka_settings,
            stage=Stage(stage),
            group_id=f"{declared.name('queries')}-{group}",
            worker_id=unique_name("w"),
            store_dir=built.store_dir,
            serving=ServingSettings(
                **{
                    "ops_port": 0,
                    "session_timeout_ms": int(TEST_SESSION_TIMEOUT_MS),
                    "fetch_wait_max_ms": TEST_FETCH_WAIT_MS,
                    "state_dir": str(state_dir(declared.prefix)),
                    **serving,
                }
            ),
        )
        worker = Worker(settings, WorkerTopics.from_declared(declared, replies_topic))
        ready = threading.Event()
        thread = threading.Thread(target=worker.run, kwargs={"ready": ready}, daemon=True)
        thread.start()
        assert ready.wait(60), "worker never subscribed"
        wait_until(lambda: worker.health().ready, 60, "worker never became ready")
        handle = RunningWorker(worker, thread)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        if handle.thread.is_alive():
            handle.stop()


@dataclasses.dataclass
class Harness:
    """One test's world: bots, declared topics, a deployer, a producer, workers, outcomes."""

    built: BuiltBots
    topics: TopicSet
    deployer: Deployer
    producer: Producer
    start_worker: WorkerFactory
    consumers: ConsumerFactory
    bootstrap: str
    prefix: str

    def send(self, bot: str, text: str, **fields: Any) -> str:
        return send(self.producer, self.topics.name("queries"), bot, text, **fields)

    def outcomes(self, expected: set[str], *roles: str) -> Outcomes:
        self.producer.flush(10)
        names = [self.topics.name(role) for role in roles or ("replies", "dead_letters")]
        return collect(self.consumers, names, expected)

    def cli(self, *args: str) -> Any:
        return CliRunner().invoke(
            cli, ["--bootstrap", self.bootstrap, "--topic-prefix", self.prefix, *args]
        )


@pytest.fixture
def harness(
    built: BuiltBots,
    declared: TopicSet,
    worker_factory: WorkerFactory,
    deployer_factory: Callable[[str], Deployer],
    producer_factory: ProducerFactory,
    consumer_factory: ConsumerFactory,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> Harness:
    return Harness(
        built,
        declared,
        deployer_factory(declared.name("deployments")),
        producer_factory(**{"linger.ms": 0}),
        worker_factory,
        consumer_factory,
        kafka_bootstrap,
        topic_prefix,
    )


def wait_until(condition: Callable[[], bool], timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(message)


def send(producer: Producer, topic: str, bot: str, text: str, **fields: Any) -> str:
    query = make_query(bot, text, **fields)
    producer.produce(topic, key=bot.encode(), value=orjson.dumps(query))
    request_id: str = query["request_id"]
    return request_id


def collect(
    consumer_factory: ConsumerFactory,
    topics: list[str],
    expected: set[str],
    timeout_s: float = 60,
    settle_s: float = 1.0,
) -> Outcomes:
    """Every committed outcome by request id, until all ``expected`` arrived (plus a settle)."""
    consumer = consumer_factory(*topics, **{"isolation.level": "read_committed"})
    outcomes: Outcomes = defaultdict(list)
    deadline = time.monotonic() + timeout_s
    settled_at: float | None = None
    while time.monotonic() < deadline:
        for message in consumer.consume(500, 0.2):
            if message.error() is None:
                record = orjson.loads(message.value() or b"null")
                kind = "dead_letter" if "reason" in record else "reply"
                outcomes[record.get("request_id") or "?"].append((kind, record))
        if expected <= outcomes.keys():
            settled_at = settled_at or time.monotonic()
            if time.monotonic() - settled_at >= settle_s:  # duplicates would show up here
                break
    consumer.unsubscribe()
    return outcomes


def assert_exactly_once(outcomes: Outcomes, expected: set[str]) -> None:
    missing = expected - outcomes.keys()
    doubled = {rid: len(v) for rid, v in outcomes.items() if rid in expected and len(v) != 1}
    assert not missing, f"{len(missing)} queries have no outcome"
    assert not doubled, f"queries with more than one outcome: {doubled}"


def worker_command(harness: Harness, worker_id: str, *extra: str) -> list[str]:
    return worker_argv(
        harness.bootstrap,
        harness.prefix,
        harness.built.store_dir,
        f"{harness.topics.name('queries')}-serve-real",
        worker_id,
        *extra,
    )


def worker_argv(
    bootstrap: str, prefix: str, store_dir: Path, group: str, worker_id: str, *extra: str
) -> list[str]:
    """``fleetserve worker`` as a child process, the way a supervisor would run it."""
    return [
        sys.executable,
        "-m",
        "fleetserve",
        "--bootstrap",
        bootstrap,
        "--topic-prefix",
        prefix,
        "--store",
        str(store_dir),
        "--group",
        group,
        "--worker-id",
        worker_id,
        "worker",
        "--ops-port",
        "0",
        "--session-timeout-ms",
        TEST_SESSION_TIMEOUT_MS,
        "--fetch-wait-max-ms",
        str(TEST_FETCH_WAIT_MS),
        "--state-dir",
        str(state_dir(prefix)),
        *extra,
    ]


def state_dir(prefix: str) -> Path:
    """Where a test's workers keep the pass in flight: per namespace, never the checkout."""
    return Path(tempfile.gettempdir()) / "fleetserve-test-state" / (prefix or "default")


def clean_env() -> dict[str, str]:
    """The environment minus FLEETSERVE_* settings, so a child sees only its arguments."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FLEETSERVE_")}
