"""Workers the benchmark can look inside: their ops port's /metrics, scraped and summed.

:func:`running_workers` is every scenario's worker group: each :class:`GroupMember` has
its process, its ops port (its Prometheus metrics) and its log, and the rebalance
scenario adds or stops one member while the others run.

Cold-load percentiles come from the cache's load-latency *histogram*
(``fleetserve_cache_load_seconds``), the only per-load record a worker exports; they are
estimated the way Prometheus' ``histogram_quantile`` does it (linear inside the bucket),
so they are as fine as the buckets (0.25 ms steps below 1 ms, then 1.5, 2, 3, 5, 10 ms ...).
The mean (sum / count) is exact.
"""

from __future__ import annotations

import logging
import math
import subprocess
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from fleetserve.demo.run import stop_workers, wait_ready
from fleetserve_bench.procstat import rss_bytes
from fleetserve_bench.world import BenchWorld

logger = logging.getLogger(__name__)

Buckets = list[tuple[float, float]]  # (upper bound, cumulative count), ascending, +Inf last


@dataclass(frozen=True)
class Scrape:
    """One /metrics page: every sample summed over its labels; histogram buckets by bound."""

    values: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, Buckets] = field(default_factory=dict)

    def get(self, name: str) -> float:
        return self.values.get(name, 0.0)


EMPTY = Scrape()


def parse_metrics(text: str) -> Scrape:
    values: dict[str, float] = defaultdict(float)
    bounds: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_bucket") and "le" in sample.labels:
                bounds[sample.name[: -len("_bucket")]][float(sample.labels["le"])] += sample.value
            else:
                values[sample.name] += sample.value
    buckets = {name: sorted(by_bound.items()) for name, by_bound in bounds.items()}
    return Scrape(dict(values), buckets)


def scrape(port: int, timeout_s: float = 2.0) -> Scrape:
    """The worker's metrics on ``port``; :data:`EMPTY` when it does not answer (gone)."""
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return parse_metrics(response.read().decode())
    except (urllib.error.URLError, OSError) as exc:
        logger.info("no metrics from port %d: %s", port, exc)
        return EMPTY


def total(scrapes: Iterable[Scrape], name: str) -> float:
    return sum(s.get(name) for s in scrapes)


def merged_buckets(scrapes: Iterable[Scrape], name: str) -> Buckets:
    """One histogram from several workers' (cumulative counts add up bound by bound)."""
    summed: dict[float, float] = defaultdict(float)
    for s in scrapes:
        for bound, count in s.buckets.get(name, []):
            summed[bound] += count
    return sorted(summed.items())


def bucket_delta(after: Buckets, before: Buckets) -> Buckets:
    """What was observed between two scrapes of the same histogram."""
    earlier = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


def histogram_quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """Prometheus' estimate of the q-quantile from cumulative buckets; None when empty.

    Linear interpolation inside the bucket holding the rank, from the bucket below's
    bound (0 for the first); a rank in the +Inf bucket answers the largest finite bound.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


@dataclass
class GroupMember:
    """One ``fleetserve worker`` subprocess with its ops port and log."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def metrics(self) -> Scrape:
        return scrape(self.port) if self.alive else EMPTY

    def rss(self) -> int:
        return rss_bytes(self.pid) if self.alive else 0


def spawn_member(
    world: BenchWorld, group: str, extra: Sequence[str] = (), prefix: str = ""
) -> GroupMember:
    return GroupMember(*world.spawn_worker(group, extra, prefix))


def wait_member_ready(member: GroupMember) -> None:
    wait_ready(member.process, member.port, member.log)


@contextmanager
def running_workers(
    world: BenchWorld, size: int, group: str, extra: Sequence[str] = (), prefix: str = ""
) -> Iterator[list[GroupMember]]:
    """``size`` ready workers in ``group`` on the topics under ``prefix`` (see
    ``BenchWorld.namespace``); the list may grow; all are stopped on the way out."""
    members = [spawn_member(world, group, extra, prefix) for _ in range(size)]
    try:
        for member in members:
            wait_member_ready(member)
        yield members
    finally:
        stop_workers([m.process for m in members], lambda line: logger.info("%s", line))
