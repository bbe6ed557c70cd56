"""Density and churn: many bots, uniform traffic, a model budget that does or does not fit.

A group in its own topic namespace (``BenchWorld.namespace``) is started and ready (the
baseline RSS and metrics are taken then) before its queries exist; then a backlog of
uniform queries (every bot once in a shuffled order, then uniform random draws) is
written and answered with ``--model-memory`` as each worker's cache budget, while the
benchmark samples each worker's RSS from /proc and its cache gauges from /metrics every
``sample_s``.

* **churn**: the budget is smaller than the bots a worker serves, so it keeps evicting
  and reloading; the result is its hit rate, evictions per second, cold-load latency and
  the reply rate it sustains that way.
* **fits**: the budget holds every bot a worker serves; the result is the RSS of a worker
  with all of them resident (one worker: the whole fleet).

What the numbers mean:

* hits and misses are the cache's, one per distinct bot per pass (a pass pins each bot
  of its batch once), not one per query;
* cold-load percentiles are estimated from the ``fleetserve_cache_load_seconds``
  histogram (see ``metrics_scrape.py``), the mean is exact; a load is timed from the miss
  to a ready session, so waiting for a free load thread is not in it;
* ``growth_per_resident_model_bytes`` is (end RSS - RSS when ready) / resident models,
  so it also carries the worker's own growth under load (buffers, first inference runs).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fleetserve.config.serving import parse_size
from fleetserve.core.clock import now_ms
from fleetserve.kafka.clients import producer
from fleetserve_bench.metrics_scrape import (
    GroupMember,
    Scrape,
    bucket_delta,
    histogram_quantile,
    merged_buckets,
    running_workers,
    total,
)
from fleetserve_bench.outputs import fleetserve_point, read_points
from fleetserve_bench.procstat import cpu_seconds
from fleetserve_bench.stats import per_million, percentiles, sustained_rate
from fleetserve_bench.traffic import query_value
from fleetserve_bench.world import BenchWorld

logger = logging.getLogger(__name__)

LOAD_SECONDS = "fleetserve_cache_load_seconds"
_runs = itertools.count(1)


def uniform_bots(bot_ids: Sequence[str], count: int, seed: int) -> list[str]:
    """``count`` bot ids: one shuffled round of the fleet, then independent uniform draws.

    The round first asks every bot once (when ``count`` allows), so the fits variant has
    the whole fleet resident; the draws after it are what uniform traffic means for a
    cache (whole rounds over and over would be LRU's worst case, a cyclic scan).
    """
    rng = np.random.default_rng(seed)
    first = rng.permutation(len(bot_ids))[:count]
    rest = rng.integers(0, len(bot_ids), size=count - len(first))
    return [bot_ids[i] for i in (*first, *rest)]


def preload_uniform(world: BenchWorld, topic: str, count: int, seed: int) -> int:
    """``count`` uniformly spread queries on ``topic``; returns the count."""
    writer = producer(
        world.kafka,
        {
            "linger.ms": 50,
            "queue.buffering.max.messages": 2_000_000,
            "partitioner": "murmur2_random",
        },
    )
    cursor = {bot: itertools.cycle(texts) for bot, texts in world.texts.items()}
    now = now_ms()
    for index, bot in enumerate(uniform_bots(world.bot_ids, count, seed)):
        writer.produce(topic, key=bot.encode(), value=query_value(bot, next(cursor[bot]), now))
        if index % 20_000 == 0:
            writer.poll(0)
    writer.flush(120)
    return count


@dataclass
class Sample:
    t_s: float
    rss: list[int]
    resident_models: list[float]
    evictions: float


@dataclass
class Sampler:
    """A thread sampling each member's RSS (/proc) and cache gauges (/metrics)."""

    members: list[GroupMember]
    every_s: float
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.take()
        return self.samples

    def take(self) -> None:
        scrapes = [m.metrics() for m in self.members]
        self.samples.append(
            Sample(
                round(time.monotonic() - self.started, 2),
                [m.rss() for m in self.members],
                [s.get("fleetserve_cache_resident_models") for s in scrapes],
                total(scrapes, "fleetserve_cache_evictions_total"),
            )
        )

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.take()


def density_run(
    world: BenchWorld,
    *,
    workers: int,
    model_memory: str,
    queries: int,
    timeout_s: float,
    sample_s: float = 0.5,
    variant: str = "churn",
    seed: int = 11,
) -> dict[str, Any]:
    """A ``workers`` group answering ``queries`` uniform queries within ``model_memory``."""
    prefix = f"bench-density-{variant}-{next(_runs)}."
    topics = world.namespace(prefix)
    args = ["--model-memory", model_memory]
    with running_workers(world, workers, f"{prefix}group", args, prefix) as members:
        pids = [m.pid for m in members]
        sampler = Sampler(members, sample_s)
        sampler.take()  # ready, before any query: the baseline
        before = [m.metrics() for m in members]
        cpu_before = cpu_seconds([*pids, world.broker_pid])
        sampler.start()
        preload_uniform(world, topics.name("queries"), queries, seed)
        points = read_points(
            world.kafka, topics.name("replies"), queries, fleetserve_point, timeout_s
        )
        cpu = cpu_seconds([*pids, world.broker_pid]) - cpu_before
        after = [m.metrics() for m in members]
        samples = sampler.stop()
    produced = [p.produced_ms for p in points]
    drain_s = (max(produced) - min(produced)) / 1000 if produced else 0.0
    logger.info("density %s: %d replies of %d", variant, len(points), queries)
    return {
        "scenario": "density",
        "variant": variant,
        "bots": len(world.bot_ids),
        "workers": workers,
        "model_memory": model_memory,
        "model_memory_bytes": parse_size(model_memory),
        "queries": queries,
        "outputs": len(points),
        "replies_per_s": round(sustained_rate(produced), 1),
        "drain_s": round(drain_s, 2),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_million": round(per_million(cpu, len(points)), 1),
        "latency_ms": percentiles([p.latency_ms for p in points if p.latency_ms is not None]),
        "cache": cache_summary(before, after, drain_s),
        "rss": rss_summary(samples, after),
        "note": "hit rate per acquisition (one per distinct bot per pass), not per query; "
        "cold-load percentiles estimated from the load-seconds histogram buckets "
        "(mean exact); latency is send-to-reply of a backlog, queueing included",
    }


def cache_summary(before: list[Scrape], after: list[Scrape], drain_s: float) -> dict[str, Any]:
    def delta(name: str) -> float:
        return total(after, name) - total(before, name)

    hits, misses = delta("fleetserve_cache_hits_total"), delta("fleetserve_cache_misses_total")
    evictions = delta("fleetserve_cache_evictions_total")
    loads = bucket_delta(merged_buckets(after, LOAD_SECONDS), merged_buckets(before, LOAD_SECONDS))
    count = delta(f"{LOAD_SECONDS}_count")
    seconds = delta(f"{LOAD_SECONDS}_sum")
    return {
        "hits": int(hits),
        "misses": int(misses),
        "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        "evictions": int(evictions),
        "evictions_per_s": round(evictions / drain_s, 1) if drain_s > 0 else 0.0,
        "loads": int(count),
        "load_failures": int(delta("fleetserve_cache_load_failures_total")),
        "cold_load_ms": {
            "p50": _ms(histogram_quantile(loads, 0.5)),
            "p99": _ms(histogram_quantile(loads, 0.99)),
            "mean": _ms(seconds / count if count else None),
            "count": int(count),
            "method": "histogram buckets, linear within a bucket (Prometheus histogram_quantile)",
        },
        "resident_models": [int(s.get("fleetserve_cache_resident_models")) for s in after],
        "resident_bytes": [int(s.get("fleetserve_cache_resident_bytes")) for s in after],
    }


def rss_summary(samples: list[Sample], after: list[Scrape]) -> dict[str, Any]:
    workers = len(samples[0].rss) if samples else 0
    ready = samples[0].rss if samples else []
    end = samples[-1].rss if samples else []
    peak = [max(s.rss[i] for s in samples) for i in range(workers)]
    resident = [int(s.get("fleetserve_cache_resident_models")) for s in after]
    per_model = [
        round((end[i] - ready[i]) / resident[i]) if i < len(resident) and resident[i] else None
        for i in range(workers)
    ]
    return {
        "ready_bytes": ready,
        "peak_bytes": peak,
        "end_bytes": end,
        "end_total_bytes": sum(end),
        "growth_per_resident_model_bytes": per_model,
        "series": {
            "t_s": [s.t_s for s in samples],
            "rss_bytes": [[s.rss[i] for s in samples] for i in range(workers)],
            "resident_models": [
                [int(s.resident_models[i]) for s in samples] for i in range(workers)
            ],
            "evictions": [int(s.evictions) for s in samples],
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
