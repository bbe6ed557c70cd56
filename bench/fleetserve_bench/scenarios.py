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
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
    """The system's processes and the broker."""
    latency_ms: dict[str, float]
    cpu_system_s: float = 0.0
    cpu_broker_s: float = 0.0
    cpu_loadgen_s: float = 0.0
    """The bench process while it produced the load (librdkafka's threads included)."""
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def as_json(self) -> dict[str, Any]:
        def us(seconds: float) -> float:
            return round(per_million(seconds, self.outputs), 1)

        return {
            "system": self.system,
            "outputs": self.outputs,
            "per_s": round(self.per_s, 1),
            "cpu_s": round(self.cpu_s, 2),
            "cpu_s_per_million": us(self.cpu_s),
            "cpu_us_per_output": {
                "system": us(self.cpu_system_s),
                "broker": us(self.cpu_broker_s),
                "system_and_broker": us(self.cpu_s),
                "load_generator": us(self.cpu_loadgen_s),
            },
            "load_average_after": [round(x, 2) for x in self.load_average],
            "latency_ms": self.latency_ms,
        }


def new_topic(world: BenchWorld, name: str, partitions: int = 12) -> str:
    admin = admin_client(world.kafka)  # kept alive until the result arrives
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def preload(
    world: BenchWorld, topic: str, count: int, zipf_s: float, seed: int, active: int = 0
) -> int:
    """``count`` queries on ``topic``, bots drawn from Zipf(s) with ``seed`` (s = 0:
    uniform) over the first ``active`` bots (0: all): the same sequence for every system."""
    bots = zipf_bots(world.bot_ids[: active or None], count, zipf_s, seed)
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
    active: int = 0
    """Queries go to the first ``active`` bots of the fleet; 0: every bot."""


@dataclass(frozen=True)
class CpuMark:
    """CPU seconds so far of the system's processes and of the broker."""

    system: float
    broker: float
    loadgen_s: float = 0.0
    """CPU the bench process spent producing the load meanwhile (set after the preload)."""
    since_ms: float = 0.0
    """Outputs produced before this wall-clock ms (a warm-up's) are not measured."""

    @classmethod
    def now(cls, world: BenchWorld, pids: Sequence[int]) -> CpuMark:
        return cls(cpu_seconds(pids), cpu_seconds([world.broker_pid]))


def measure_outputs(
    world: BenchWorld,
    system: str,
    pids: Sequence[int],
    topic: str,
    expected: int,
    parse: Parse,
    timeout_s: float,
    before: CpuMark | None = None,
) -> Measured:
    """Read ``expected`` outputs; CPU of ``pids`` and the broker since ``before``. Outputs
    produced before ``before.since_ms`` (a warm-up's) are read but not measured."""
    before = before or CpuMark.now(world, pids)
    points = read_points(world.kafka, topic, expected, parse, timeout_s)
    points = [p for p in points if p.produced_ms >= before.since_ms]
    after = CpuMark.now(world, pids)
    own, broker = after.system - before.system, after.broker - before.broker
    if not points:
        return Measured(system, 0, 0.0, own + broker, {})
    produced = [p.produced_ms for p in points]
    latencies = [p.latency_ms for p in points if p.latency_ms is not None]
    rate = sustained_rate(produced)
    logger.info("%s: %d outputs at %.0f/s", system, len(points), rate)
    return Measured(
        system, len(points), rate, own + broker, percentiles(latencies),
        own, broker, before.loadgen_s, os.getloadavg(),
    )  # fmt: skip


def timed_preload(world: BenchWorld, topic: str, load: Load) -> float:
    """Preload ``load`` on ``topic``; the bench process's CPU seconds spent producing it."""
    started = time.process_time()
    preload(world, topic, load.queries, load.zipf_s, load.seed, load.active)
    return time.process_time() - started


def fleetserve_run(
    world: BenchWorld,
    system: str,
    workers: int,
    load: Load,
    expected: int,
    timeout_s: float,
    extra: Sequence[str] = (),
    warm_bots: Sequence[str] = (),
) -> Measured:
    """A settled worker group in its own namespace, then the load, then its replies.

    With ``warm_bots``, one query per bot is answered first and not measured (neither its
    CPU nor its replies): the measurement is then of serving, not of first model loads.
    """
    prefix = f"bench-{system}."
    topics = world.namespace(prefix)
    with running_workers(world, workers, f"bench-{system}", extra, prefix) as processes:
        pids = [p.pid for p in processes]
        since_ms = warm_up(world, topics.name("queries"), topics.name("replies"), warm_bots)
        before = CpuMark.now(world, pids)
        loadgen_s = timed_preload(world, topics.name("queries"), load)
        before = replace(before, loadgen_s=loadgen_s, since_ms=since_ms)
        return measure_outputs(
            world, system, pids, topics.name("replies"), expected + len(warm_bots),
            fleetserve_point, timeout_s, before,
        )  # fmt: skip


def warm_up(world: BenchWorld, queries: str, replies: str, bots: Sequence[str]) -> float:
    """One query per bot, answered; the wall-clock ms after which outputs are measured."""
    if not bots:
        return 0.0
    writer = producer(world.kafka, {"linger.ms": 50})
    now = now_ms()
    for bot in bots:
        writer.produce(queries, key=bot.encode(), value=query_value(bot, world.texts[bot][0], now))
    writer.flush(60)
    answered = read_points(world.kafka, replies, len(bots), fleetserve_point, 120)
    logger.info("warm-up: %d of %d bots answered", len(answered), len(bots))
    return float(max((p.produced_ms for p in answered), default=now)) + 1


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
        before = CpuMark.now(world, [pid])
        before = replace(before, loadgen_s=timed_preload(world, queries, load))
        return measure_outputs(world, system, [pid], out, expected, parse, timeout_s, before)


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
