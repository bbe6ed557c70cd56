"""The scenarios: each drives one system under test through the real broker and measures it.

Throughput systems all read the same preloaded queries from the beginning, each with its
own consumer group and output topic, so they answer identical traffic one after another.
Their rate is taken from the outputs' own timestamps (first to last), so neither reader
lag nor start-up time counts; CPU is every process of the system plus the broker, from
/proc, over the time it ran.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Message
from confluent_kafka.admin import NewTopic

from fleetserve.core.clock import now_ms
from fleetserve.kafka.clients import admin_client, producer
from fleetserve_bench.metrics_scrape import running_workers
from fleetserve_bench.outputs import (
    ReplyPoint,
    baseline_point,
    fleetserve_point,
    read_points,
    relay_point,
)
from fleetserve_bench.procstat import cpu_seconds
from fleetserve_bench.stats import per_million, percentiles, sustained_rate
from fleetserve_bench.traffic import query_value, zipf_bots
from fleetserve_bench.world import BenchWorld

logger = logging.getLogger(__name__)

Parse = Callable[[Message], ReplyPoint]


@dataclass(frozen=True)
class Measured:
    """One system's run: how many outputs, how fast, how long each took, at what CPU cost."""

    system: str
    outputs: int
    per_s: float
    cpu_s: float
    latency_ms: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "outputs": self.outputs,
            "per_s": round(self.per_s, 1),
            "cpu_s": round(self.cpu_s, 2),
            "cpu_s_per_million": round(per_million(self.cpu_s, self.outputs), 1),
            "latency_ms": self.latency_ms,
        }


def new_topic(world: BenchWorld, name: str, partitions: int = 12) -> str:
    admin = admin_client(world.kafka)  # kept alive until the result arrives
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def preload(world: BenchWorld, topic: str, count: int, zipf_s: float, seed: int) -> int:
    """``count`` queries on ``topic``, bots drawn from Zipf(s) with ``seed``: the same
    sequence for every system."""
    bots = zipf_bots(world.bot_ids, count, zipf_s, seed)
    writer = producer(world.kafka, {"linger.ms": 50, "queue.buffering.max.messages": 2_000_000})
    cursor = {bot: itertools.cycle(texts) for bot, texts in world.texts.items()}
    now = now_ms()
    for index, bot in enumerate(bots):
        writer.produce(topic, key=bot.encode(), value=query_value(bot, next(cursor[bot]), now))
        if index % 20_000 == 0:
            writer.poll(0)
    writer.flush(120)
    return count


@dataclass(frozen=True)
class Load:
    """The preloaded traffic every throughput system answers."""

    queries: int
    zipf_s: float
    seed: int


def measure_outputs(
    world: BenchWorld,
    system: str,
    pids: Sequence[int],
    topic: str,
    expected: int,
    parse: Parse,
    timeout_s: float,
    cpu_before: float | None = None,
) -> Measured:
    """Read ``expected`` outputs; CPU of ``pids`` and the broker since ``cpu_before``."""
    all_pids = [*pids, world.broker_pid]
    if cpu_before is None:
        cpu_before = cpu_seconds(all_pids)
    points = read_points(world.kafka, topic, expected, parse, timeout_s)
    cpu = cpu_seconds(all_pids) - cpu_before
    if not points:
        return Measured(system, 0, 0.0, cpu, {})
    produced = [p.produced_ms for p in points]
    latencies = [p.latency_ms for p in points if p.latency_ms is not None]
    rate = sustained_rate(produced)
    logger.info("%s: %d outputs at %.0f/s", system, len(points), rate)
    return Measured(system, len(points), rate, cpu, percentiles(latencies))


def fleetserve_run(
    world: BenchWorld,
    system: str,
    workers: int,
    load: Load,
    expected: int,
    timeout_s: float,
    extra: Sequence[str] = (),
) -> Measured:
    """A settled worker group in its own namespace, then the load, then its replies."""
    prefix = f"bench-{system}."
    topics = world.namespace(prefix)
    with running_workers(world, workers, f"bench-{system}", extra, prefix) as processes:
        pids = [p.pid for p in processes]
        cpu_before = cpu_seconds([*pids, world.broker_pid])
        preload(world, topics.name("queries"), load.queries, load.zipf_s, load.seed)
        return measure_outputs(
            world, system, pids, topics.name("replies"), expected, fleetserve_point, timeout_s,
            cpu_before,
        )  # fmt: skip


@contextmanager
def baseline_process(world: BenchWorld, module: str, args: Sequence[str]) -> Iterator[int]:
    log = world.work_dir / f"{module.rsplit('.', 1)[-1]}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args], stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def baseline_run(
    world: BenchWorld,
    system: str,
    module: str,
    args: Callable[[str, str], list[str]],
    load: Load,
    expected: int,
    parse: Parse,
    timeout_s: float,
) -> Measured:
    """A baseline process reading its own queries topic into its own output topic."""
    queries = new_topic(world, f"bench-{system}.queries")
    out = new_topic(world, f"bench-{system}.out")
    with baseline_process(world, module, args(queries, out)) as pid:
        cpu_before = cpu_seconds([pid, world.broker_pid])
        preload(world, queries, load.queries, load.zipf_s, load.seed)
        return measure_outputs(world, system, [pid], out, expected, parse, timeout_s, cpu_before)


def relay_run(world: BenchWorld, load: Load, timeout_s: float) -> Measured:
    def args(queries: str, out: str) -> list[str]:
        return ["--bootstrap", world.bootstrap, "--in", queries, "--out", out,
                "--group", "bench-relay"]  # fmt: skip

    module = "fleetserve_bench.baselines.relay"
    return baseline_run(world, "relay", module, args, load, load.queries, relay_point, timeout_s)


def faust_run(world: BenchWorld, load: Load, expected: int, timeout_s: float) -> Measured:
    def args(queries: str, out: str) -> list[str]:
        return ["--bootstrap", world.bootstrap, "--queries", queries, "--replies", out,
                "--store", str(world.store_dir), "--group", "bench-faust"]  # fmt: skip

    module = "fleetserve_bench.baselines.faust_agent"
    return baseline_run(world, "faust", module, args, load, expected, baseline_point, timeout_s)


def latency_run(
    world: BenchWorld, workers: int, offered_per_s: float, duration_s: float, zipf_s: float
) -> tuple[Measured, float]:
    """Paced queries at ``offered_per_s`` through a running group; latency from each reply."""
    topics = world.namespace("bench-latency.")
    topic, replies = topics.name("queries"), topics.name("replies")
    with running_workers(world, workers, "bench-latency", (), "bench-latency.") as processes:
        count = int(offered_per_s * duration_s)
        bots = zipf_bots(world.bot_ids, count, zipf_s, seed=99)
        writer = producer(world.kafka, {"linger.ms": 1})
        cursor = {bot: itertools.cycle(texts) for bot, texts in world.texts.items()}
        started = time.perf_counter()
        for index, bot in enumerate(bots):
            due = started + index / offered_per_s
            while (now := time.perf_counter()) < due:
                time.sleep(min(due - now, 0.001))
            value = query_value(bot, next(cursor[bot]), now_ms())
            writer.produce(topic, key=bot.encode(), value=value)
            writer.poll(0)
        writer.flush(60)
        achieved = count / (time.perf_counter() - started)
        measured = measure_outputs(
            world, "fleetserve", [p.pid for p in processes], replies, count, fleetserve_point, 120
        )
    return measured, achieved
