"""Run the demo: every moving part of fleetserve on this machine, for about half a minute.

The bots are built into a temporary folder, published to the models topic and deployed;
the workers use ``--store kafka``: they load every model from Kafka into their own disk
cache, as workers on other machines would.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetserve.bots.datasets import dataset_root
from fleetserve.bots.definition import BotDefinition
from fleetserve.bots.discover import find_bots
from fleetserve.bots.fleet import make_fleet
from fleetserve.bots.writer import write_fleet
from fleetserve.broker.embedded import EmbeddedBroker, file_tail, free_loopback_port
from fleetserve.builder.config import BuildConfig
from fleetserve.builder.fleet import build_all
from fleetserve.client.client import FleetClient, Outcome
from fleetserve.config.settings import KAFKA_STORE, KafkaSettings
from fleetserve.core.clock import now_ms
from fleetserve.demo.questions import Question, load_test_split, pick_questions
from fleetserve.deploy import records
from fleetserve.deploy.control import ControlPlane
from fleetserve.deploy.log import publish_records
from fleetserve.deploy.placement import PublishingPlacement, build_order
from fleetserve.errors import FatalError, ReplyTimeout
from fleetserve.kafka.clients import admin_client
from fleetserve.store.kafka_store import KafkaModelStore, ModelTopics
from fleetserve.store.local import LocalDirectoryStore
from fleetserve.topics.apply import apply_topics
from fleetserve.topics.loader import load_topics
from fleetserve.topics.spec import TopicSet

logger = logging.getLogger(__name__)

Echo = Callable[[str], None]
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DemoOptions:
    bots: int = 36
    workers: int = 2
    questions_per_language: int = 5
    seed: int = 7
    store_dir: Path | None = None  # None: a temporary folder, removed afterwards


@dataclass(frozen=True)
class Answer:
    question: Question
    outcome: Outcome | ReplyTimeout


def run_demo(options: DemoOptions, echo: Echo) -> list[Answer]:
    with ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        kafka = KafkaSettings(broker.bootstrap_servers)
        topics = load_topics(None, "local", "")
        apply_topics(admin_client(kafka), topics)
        echo(f"broker up on {broker.bootstrap_servers}; topics applied")
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fleetserve-demo-")))
        store_dir = options.store_dir or work / "store"
        bots = make_fleet(options.bots, seed=options.seed)
        build_fleet(bots, work / "fleet", store_dir, echo)
        publish_and_deploy(kafka, topics, LocalDirectoryStore(store_dir), echo)
        ports = [free_loopback_port() for _ in range(options.workers)]
        # The workers see the build folder nowhere: they read the models topic.
        stack.enter_context(worker_group(broker.bootstrap_servers, KAFKA_STORE, ports, work, echo))
        questions = pick_questions(
            bots, load_test_split(dataset_root()), options.questions_per_language, options.seed
        )
        with FleetClient(
            kafka,
            queries_topic=topics.name("queries"),
            replies_topic=topics.name("replies"),
            dead_letters_topic=topics.name("dead_letters"),
        ) as client:
            outcomes = warm_answers(client, questions, echo)
    return [Answer(q, o) for q, o in zip(questions, outcomes, strict=True)]


def warm_answers(
    client: FleetClient, questions: list[Question], echo: Echo
) -> list[Outcome | ReplyTimeout]:
    """Each question's answer as a user of a warm system sees it.

    A first round asks every question at once and is not shown: it pays for each bot's
    first model load and each worker's first pass. Then each question is asked alone on
    the same connected client, and its round trip (send to reply) is what the table shows.
    """
    warm_up = client.ask_many(((q.bot_id, q.text) for q in questions), timeout_s=30)
    warmed = sum(isinstance(o, Outcome) for o in warm_up)
    echo(
        f"warm-up round: {warmed}/{len(questions)} answered (models loaded); now asking each "
        "question alone: the ms column is its round trip on a connected client, "
        f"which started in {client.start_up_ms or 0:.0f} ms"
    )
    outcomes: list[Outcome | ReplyTimeout] = []
    for question in questions:
        try:
            outcomes.append(client.ask(question.bot_id, question.text, timeout_s=10))
        except ReplyTimeout as timeout:
            outcomes.append(timeout)
    return outcomes


def build_fleet(
    bots: list[BotDefinition],
    fleet_dir: Path,
    store_dir: Path,
    echo: Echo,
    config: BuildConfig | None = None,
) -> None:
    started = time.perf_counter()
    write_fleet(bots, fleet_dir)
    results = build_all(
        find_bots(fleet_dir), config or BuildConfig(), store_dir, workers=os.cpu_count()
    )
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise FatalError(f"demo bots failed to build: {[(r.bot_id, r.reason) for r in failed]}")
    formats = Counter(r.quantization for r in results)
    echo(
        f"built {len(results)} bots in {time.perf_counter() - started:.1f} s ("
        + ", ".join(f"{formats[name]} {name}" for name in ("int4", "int8", "fp32") if formats[name])
        + ")"
    )


def deploy_all(kafka: KafkaSettings, topic: str, store: LocalDirectoryStore, echo: Echo) -> None:
    now = now_ms()
    deployments = []
    for bot_id in store.bots():
        version = build_order(store, bot_id)[-1]  # the newest build, not the last name
        manifest = store.read_manifest(bot_id, version)
        deployments.append(
            records.deploy(
                None,
                bot_id=bot_id,
                stage="real",
                model_version=version,
                sha256=manifest["model"]["sha256"],
                actor="demo",
                now_ms=now,
            )
        )
    publish_records(kafka, topic, deployments)
    echo(f"deployed {len(deployments)} bots to stage real")


def publish_and_deploy(
    kafka: KafkaSettings, topics: TopicSet, store: LocalDirectoryStore, echo: Echo
) -> None:
    """Each bot's snapshot to the models topic, then its deployment naming where it is."""
    placement = PublishingPlacement(
        store, KafkaModelStore(kafka, ModelTopics.from_declared(topics))
    )
    plane = ControlPlane(kafka, topics.name("deployments"), placement, "demo")
    with closing(plane):
        deployed = plane.deploy_many(
            [(bot, build_order(store, bot)[-1]) for bot in store.bots()], "real"
        )
    echo(
        f"published {len(deployed)} snapshots to {placement.models.topics.models} and "
        "deployed them to stage real"
    )


@contextmanager
def worker_group(
    bootstrap: str, store_dir: Path | str, ports: list[int], work: Path, echo: Echo
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``len(ports)`` worker processes in one group; SIGTERM and wait on the way out."""
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for index, port in enumerate(ports, start=1):
            log = work / f"worker-{index}.log"
            logs.append(log)
            processes.append(spawn_worker(bootstrap, store_dir, index, port, log))
        started = time.perf_counter()
        for process, port, log in zip(processes, ports, logs, strict=True):
            wait_ready(process, port, log)
        echo(f"{len(processes)} workers ready in {time.perf_counter() - started:.1f} s")
        yield processes
    finally:
        stop_workers(processes, echo)


def spawn_worker(
    bootstrap: str,
    store_dir: Path | str,
    index: int,
    port: int,
    log: Path,
    *,
    worker_id: str | None = None,
    global_args: Sequence[str] = (),
    worker_args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """``fleetserve worker`` as a child process, with only its arguments as settings."""
    command = [
        sys.executable,
        "-m",
        "fleetserve",
        "--bootstrap",
        bootstrap,
        "--store",
        str(store_dir),
        "--worker-id",
        worker_id or f"demo-{index}",
        *global_args,
        "worker",
        "--ops-port",
        str(port),
        "--session-timeout-ms",
        "6000",
        "--state-dir",
        str(log.parent / "state"),
        *worker_args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETSERVE_")}
    with log.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)


def wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FatalError(f"a demo worker exited with {process.returncode}:\n{file_tail(log)}")
        if http_ok(f"http://127.0.0.1:{port}/readyz"):
            return
        time.sleep(0.1)
    raise FatalError(f"a demo worker was not ready within {READY_TIMEOUT_S:g} s:\n{file_tail(log)}")


def stop_workers(processes: list[subprocess.Popen[bytes]], echo: Echo) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    clean = 0
    for process in processes:
        try:
            clean += process.wait(STOP_TIMEOUT_S) == 0
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if processes:
        echo(f"workers stopped ({clean}/{len(processes)} cleanly)")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
