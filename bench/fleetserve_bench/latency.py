"""Latency side by side: one paced producer, the relay over two hops, and fleetserve.

Each system gets fresh topics, is started and settled, answers a warm-up (one query per
bot, so no model load is measured), and then the same paced producer sends queries at
the same rate for the same time. A reader thread stamps each output's arrival, so every
system is measured the same way: from the moment the producer handed the query to
librdkafka to the moment a consumer of the output topic had it (queries -> system ->
outputs: two hops through the broker for the relay and for fleetserve alike).

The producer keeps librdkafka's default linger (5 ms), as upstream services do. Runs are
short on purpose: on Tansu, the development broker, a partition's one-hop latency grows
with the record batches it holds (``bench/components/kafka_settings_bench.py``,
``partition_growth``: p50 / p99 2.2 / 4.6 ms empty, 3.9 / 15 at 1,000 batches, 7.1 / 67
at 2,000, 15.6 / 175 at 4,000, seconds at 6,000). A paced producer writes at most one
batch per partition per linger, so a run ends with at most ``duration_s`` x 200 batches
per partition (fewer at low rates: 200 q/s over 12 partitions is about 17 a second on an
average partition, more on a hot bot's).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from fleetserve.core.clock import now_ms
from fleetserve.kafka.clients import consumer, producer
from fleetserve_bench.metrics_scrape import running_workers
from fleetserve_bench.procstat import cpu_seconds
from fleetserve_bench.scenarios import baseline_process, new_topic
from fleetserve_bench.stats import p50_by_fifth, percentiles, queueing
from fleetserve_bench.traffic import zipf_bots
from fleetserve_bench.world import BenchWorld

logger = logging.getLogger(__name__)

LINGER_NOTE = "librdkafka default (5 ms)"
READER_FETCH_WAIT_MS = 5


@dataclass(frozen=True)
class Pace:
    rate_per_s: float
    duration_s: float
    zipf_s: float = 1.1
    seed: int = 99


@dataclass
class Arrivals:
    """A reader thread on an output topic: when each request id first arrived."""

    world: BenchWorld
    topic: str
    seen: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Arrivals:
        self._thread = threading.Thread(target=self._run, name="bench-arrivals", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def wait_for(self, wanted: Sequence[str], timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(r not in self.seen for r in wanted):
            time.sleep(0.02)
        return sum(r in self.seen for r in wanted)

    def _run(self) -> None:
        reader = consumer(
            self.world.kafka,
            {
                "group.id": f"bench-arrivals-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": READER_FETCH_WAIT_MS,
            },
        )
        try:
            partitions = reader.list_topics(self.topic, timeout=10).topics[self.topic].partitions
            reader.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            while not self._stop.is_set():
                first = reader.poll(0.05)
                if first is None:
                    continue
                arrived = time.monotonic() * 1000
                for message in [first, *reader.consume(10_000, 0)]:
                    if message.error() is None and message.value():
                        request_id = orjson.loads(message.value() or b"{}").get("request_id")
                        self.seen.setdefault(str(request_id), arrived)
        finally:
            reader.close()


class PacedProducer:
    """Queries for ``bots`` at a steady rate; remembers when each was handed to librdkafka."""

    def __init__(self, world: BenchWorld, topic: str) -> None:
        self.world = world
        self.topic = topic
        self.sent: dict[str, float] = {}
        self._writer = producer(world.kafka, {"partitioner": "murmur2_random"})
        self._texts = {b: itertools.cycle(t) for b, t in world.texts.items()}
        self._ids = itertools.count()

    def send(self, bot: str, tag: str) -> str:
        request_id = f"{tag}-{next(self._ids)}"
        value = orjson.dumps(
            {
                "version": 1,
                "request_id": request_id,
                "bot_id": bot,
                "text": next(self._texts[bot]),
                "sent_at_ms": now_ms(),
            }
        )
        self.sent[request_id] = time.monotonic() * 1000
        self._writer.produce(self.topic, key=bot.encode(), value=value)
        return request_id

    def run(self, pace: Pace, bots: Sequence[str], tag: str) -> tuple[list[str], float]:
        """Send for ``pace.duration_s``; the request ids and the achieved rate."""
        count = int(pace.rate_per_s * pace.duration_s)
        order = zipf_bots(bots, count, pace.zipf_s, pace.seed)
        ids: list[str] = []
        started = time.perf_counter()
        for index, bot in enumerate(order):
            due = started + index / pace.rate_per_s
            while (now := time.perf_counter()) < due:
                time.sleep(min(due - now, 0.0005))
            ids.append(self.send(bot, tag))
            self._writer.poll(0)
        elapsed = time.perf_counter() - started
        self._writer.flush(30)
        return ids, count / max(elapsed, 1e-9)

    def warm_up(self, bots: Sequence[str], tag: str) -> list[str]:
        ids = [self.send(bot, tag) for bot in bots]
        self._writer.flush(30)
        return ids


SystemUp = Callable[[], AbstractContextManager[list[int]]]


@dataclass(frozen=True)
class Cores:
    """Mean cores used over a run: the system's processes, the broker, and this process
    (the paced producer and the reader, librdkafka's threads included)."""

    seconds: float
    system: float
    broker: float
    load_and_reader: float

    def shares(self) -> dict[str, float]:
        return {
            "system": round(self.system, 2),
            "broker": round(self.broker, 2),
            "load_and_reader": round(self.load_and_reader, 2),
            "box": round(self.system + self.broker + self.load_and_reader, 2),
        }


class CoresMeter:
    """Started at construction; :meth:`read` gives the cores used since."""

    def __init__(self, pids: Sequence[int], broker_pid: int) -> None:
        self.pids, self.broker_pid = list(pids), broker_pid
        self._start = self._now()

    def _now(self) -> tuple[float, float, float, float]:
        return (
            time.perf_counter(),
            cpu_seconds(self.pids),
            cpu_seconds([self.broker_pid]),
            time.process_time(),
        )

    def read(self) -> Cores:
        wall, *used = (b - a for a, b in zip(self._start, self._now(), strict=True))
        wall = max(wall, 1e-9)
        return Cores(wall, *(u / wall for u in used))


def measure_latency(
    world: BenchWorld, system: str, up: SystemUp, queries: str, outputs: str, pace: Pace
) -> dict[str, Any]:
    """One system under the paced load: latency percentiles, losses and CPU."""
    with up() as pids, Arrivals(world, outputs) as arrivals:
        sender = PacedProducer(world, queries)
        warm = sender.warm_up(world.bot_ids, f"{system}-warm")
        warmed = arrivals.wait_for(warm, 120)
        meter = CoresMeter(pids, world.broker_pid)
        ids, achieved = sender.run(pace, world.bot_ids, system)
        arrived = arrivals.wait_for(ids, 60)
        cores = meter.read()
    latencies = [arrivals.seen[r] - sender.sent[r] for r in ids if r in arrivals.seen]
    logger.info("latency %s: %d of %d arrived", system, arrived, len(ids))
    fifths = p50_by_fifth(latencies)
    return {
        "system": system,
        "offered_per_s": pace.rate_per_s,
        "achieved_offered_per_s": round(achieved, 1),
        "duration_s": pace.duration_s,
        "queries": len(ids),
        "arrived": arrived,
        "warm_up_arrived": f"{warmed}/{len(warm)}",
        "latency_ms": percentiles(latencies),
        "p50_by_fifth_ms": fifths,
        "queueing": queueing(fifths),
        "cpu_s_system_and_broker": round(cores.seconds * (cores.system + cores.broker), 2),
        "cores": cores.shares(),
        "outputs": arrived,
    }


def latency_side_by_side(
    world: BenchWorld,
    workers: int,
    pace: Pace,
    deliveries: Sequence[str] = ("exactly-once", "at-least-once"),
) -> dict[str, Any]:
    """The relay (two hops), then fleetserve in each of ``deliveries``, one after another.

    Every system and rate gets topics of its own, so no run reads or writes partitions an
    earlier one filled (the development broker slows down as a partition's batches grow).
    """
    results = []
    rate = f"{pace.rate_per_s:g}"
    relay_in, relay_out = f"bench-lat-{rate}-relay.in", f"bench-lat-{rate}-relay.out"
    results.append(
        measure_latency(
            world, "relay", _relay_up(world, relay_in, relay_out), relay_in, relay_out, pace
        )
    )
    for delivery in deliveries:
        prefix = f"bench-lat-{rate}-{delivery}."
        topics = world.namespace(prefix)
        up = _workers_up(world, workers, prefix, delivery)
        results.append(
            measure_latency(
                world,
                f"fleetserve {delivery}",
                up,
                topics.name("queries"),
                topics.name("replies"),
                pace,
            )
        )
    return {"offered_per_s": pace.rate_per_s, "systems": results, "ratios": latency_ratios(results)}


def latency_sweep(
    world: BenchWorld,
    workers: int,
    rates: Sequence[float],
    pace: Pace,
    deliveries: Sequence[str] = ("exactly-once", "at-least-once"),
) -> dict[str, Any]:
    """Every system at each of ``rates`` and at ``pace``'s own rate (the headline), lowest
    first, each for ``pace``'s duration and skew.

    One rate alone can mislead: past the rate the box serves (broker, producer, reader and
    system on the same cores), every system only queues, and the ratios compare backlogs.
    So the result names the rates at which the relay itself queued, and compares the
    systems at the highest rate it served without queueing as well as at the headline.
    """
    headline_rate = pace.rate_per_s
    points = [
        latency_side_by_side(world, workers, replace(pace, rate_per_s=rate), deliveries)
        for rate in sorted({*rates, headline_rate})
    ]
    headline = next(p for p in points if p["offered_per_s"] == headline_rate)
    served = [p for p in points if not relay_queued(p)]
    return {
        "scenario": "latency",
        "producer_linger": LINGER_NOTE,
        "reader_fetch_wait_max_ms": READER_FETCH_WAIT_MS,
        "duration_s": pace.duration_s,
        "why_this_long": why_this_long(pace.duration_s, sorted({*rates, headline_rate})),
        "rates": points,
        # The headline rate's figures at the top level, as before the sweep.
        "offered_per_s": headline_rate,
        "systems": headline["systems"],
        "ratios": headline["ratios"],
        "relay_queued_at_headline": relay_queued(headline),
        "comparable": served[-1] if served else None,
    }


def why_this_long(duration_s: float, rates: Sequence[float], partitions: int = 12) -> str:
    """What the run length means for the development broker's partitions (module docstring)."""
    cap = 1000 / 5 * duration_s  # one batch per partition per 5 ms linger
    held = [min(rate / partitions * duration_s, cap) for rate in rates]
    per_rate = ", ".join(f"{r:,.0f} q/s: ~{h:,.0f}" for r, h in zip(rates, held, strict=True))
    return (
        "at most one record batch per partition per 5 ms linger, so by the end of a run an "
        f"average queries partition holds about ({per_rate}) batches, and a hot bot's "
        f"partition up to {cap:,.0f}; on Tansu one hop's p50 / p99 "
        "grow from 2.2 / 4.6 ms on an empty partition to 3.9 / 15 at 1,000 batches and "
        "7.1 / 67 at 2,000 (kafka_settings_bench partition_growth), so high rates' p99 "
        "carry some of the broker's growth; a longer run would measure it"
    )


def relay_queued(point: dict[str, Any]) -> bool:
    return any(s["system"] == "relay" and s["queueing"] for s in point["systems"])


def latency_ratios(results: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    by = {r["system"]: r["latency_ms"] for r in results}
    relay = by.get("relay") or {}

    def ratio(system: str, quantile: str) -> float | None:
        mine = (by.get(system) or {}).get(quantile)
        base = relay.get(quantile)
        return round(mine / base, 2) if mine is not None and base else None

    return {
        "at-least-once/relay p50": ratio("fleetserve at-least-once", "p50"),
        "at-least-once/relay p99": ratio("fleetserve at-least-once", "p99"),
        "exactly-once/relay p50": ratio("fleetserve exactly-once", "p50"),
        "exactly-once/relay p99": ratio("fleetserve exactly-once", "p99"),
    }


def _workers_up(world: BenchWorld, workers: int, prefix: str, delivery: str) -> SystemUp:
    @contextmanager
    def up() -> Iterator[list[int]]:
        extra = ["--delivery", delivery]
        with running_workers(world, workers, f"{prefix}workers", extra, prefix) as group:
            yield [member.pid for member in group]

    return up


def _relay_up(world: BenchWorld, in_topic: str, out_topic: str) -> SystemUp:
    @contextmanager
    def up() -> Iterator[list[int]]:
        new_topic(world, in_topic)
        new_topic(world, out_topic)
        args = ["--bootstrap", world.bootstrap, "--in", in_topic, "--out", out_topic,
                "--group", "bench-lat-relay"]  # fmt: skip
        with baseline_process(world, "fleetserve_bench.baselines.relay", args) as pid:
            yield [pid]

    return up
