"""Loads from the models topic (``--store kafka``): publish, first load, disk-cache load.

Run: python bench/components/model_store_bench.py --store DIR [--bots N] [--bootstrap H:P]
                                                   [--out bench/results/model_store.json]
(``cache_bench.py`` runs it on the store it built and puts the result in its own JSON.)

1. Publish: each bot's snapshot in DIR (the first ``--bots``, default all) to the models
   topic of an embedded broker (or ``--bootstrap``), as ``fleetserve publish`` does:
   seconds, MB/s, and how many were sent.
2. First load on a worker: a fresh process with an empty disk cache loads every snapshot
   through ModelCache + SnapshotLoader at the location its deployment would name:
   one fetch, sha256 of every byte, session. Target: p99 <= 20 ms on the development broker.
3. Disk-cache load (a restart): another fresh process, the same disk cache, the same
   routes: read, sha256, session; nothing fetched. Target: p99 <= 10 ms.

Each load's time is the loader's own (miss -> ready session); ``read_ms`` is the store's
part of it (fetch and verify, or read and verify). The load average before and after is
recorded: the 2 cores are shared, and a busy machine shows in the tail.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleetserve.broker.embedded import EmbeddedBroker
from fleetserve.cache.loader import SnapshotLoader
from fleetserve.cache.model_cache import ModelCache
from fleetserve.config.settings import KafkaSettings
from fleetserve.core.route import Route
from fleetserve.deploy.placement import PublishingPlacement, build_order
from fleetserve.kafka.clients import admin_client
from fleetserve.models.runtime import predict
from fleetserve.store.base import Snapshot, SnapshotRequest
from fleetserve.store.disk_cache import DiskCache
from fleetserve.store.kafka_store import KafkaModelStore, ModelTopics
from fleetserve.store.local import LocalDirectoryStore
from fleetserve.topics.apply import apply_topics
from fleetserve.topics.loader import load_topics

GB = 10**9
TARGET_FIRST_P99_MS = 20.0
TARGET_DISK_P99_MS = 10.0


class TimedKafkaStore(KafkaModelStore):
    """The worker's store, timing each ``read_snapshot`` (the disk, or fetch + verify)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_seconds: list[float] = []

    def read_snapshot(self, request: SnapshotRequest) -> Snapshot:
        started = time.perf_counter()
        snapshot = super().read_snapshot(request)
        self.read_seconds.append(time.perf_counter() - started)
        return snapshot


def percentiles(samples: Sequence[float], scale: float = 1000.0) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(scale * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "n": len(ordered),
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
        "max": round(scale * ordered[-1], 3),
        "mean": round(scale * statistics.fmean(ordered), 3),
    }


def publish(store: Path, bots: int | None, bootstrap: str, routes_file: Path) -> dict[str, Any]:
    """Each bot's newest snapshot on the models topic; the routes (with locations) to a file."""
    kafka = KafkaSettings(bootstrap)
    topics = load_topics(None, "local", "")
    apply_topics(admin_client(kafka), topics)
    local = LocalDirectoryStore(store)
    wanted = [(bot, build_order(local, bot)[-1]) for bot in local.bots()[:bots]]
    models = KafkaModelStore(kafka, ModelTopics.from_declared(topics))
    try:
        started = time.perf_counter()
        placed = PublishingPlacement(local, models).place_many(wanted)
        seconds = time.perf_counter() - started
    finally:
        models.close()
    routes = [
        [bot, version, p.sha256, *(p.location or ())]
        for (bot, version), p in zip(wanted, placed, strict=True)
    ]
    routes_file.write_text(json.dumps(routes))
    total = sum(local.read_manifest(b, v)["model"]["size_bytes"] for b, v in wanted)
    return {
        "snapshots": len(placed),
        "sent": sum(p.sent for p in placed),
        "model_bytes": total,
        "seconds": round(seconds, 2),
        "mb_per_s": round(total / 1e6 / seconds, 1),
    }


def load_all(bootstrap: str, routes_file: Path, disk: Path, from_disk: bool) -> dict[str, Any]:
    """Every route loaded once through the worker's cache and loader (in a fresh process)."""
    raw = json.loads(routes_file.read_text())
    routes = [Route(b, "real", v, sha, location=(t, p, o)) for b, v, sha, t, p, o in raw]
    topics = ModelTopics.from_declared(load_topics(None, "local", ""))
    store = TimedKafkaStore(
        KafkaSettings(bootstrap), topics, disk_cache=DiskCache(disk, 64 * GB), fetch_timeout_s=30
    )
    # onnxruntime's and numpy's one-time allocations are not any load's cost.
    warm = SnapshotLoader(store)(routes[0])
    predict(warm.session, warm.metadata.featurizer, ["hello"])
    store.read_seconds.clear()
    store.fetches = 0
    cache = ModelCache(SnapshotLoader(store, max_model_bytes=16 * 2**20), budget_bytes=100 * GB)
    load_s = []
    for route in routes[1:]:
        model = cache.acquire(route)
        load_s.append(model.load_seconds)
        cache.release(model)
    cache.close()
    store.close()
    target = TARGET_DISK_P99_MS if from_disk else TARGET_FIRST_P99_MS
    loads = percentiles(load_s)
    return {
        "what": "disk cache, as after a restart" if from_disk else "first load, empty disk",
        "loads": len(load_s),
        "fetched_from_kafka": store.fetches,
        "load_ms": loads,
        "read_ms": percentiles(store.read_seconds),
        "target_p99_ms": target,
        "within_target": loads["p99"] <= target,
    }


def in_fresh_process(bootstrap: str, routes_file: Path, disk: Path, phase: str) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--phase", phase, "--bootstrap", bootstrap]
    argv += ["--routes", str(routes_file), "--disk", str(disk)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{done.stderr[-5000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@contextmanager
def broker_at(bootstrap: str | None) -> Iterator[str]:
    if bootstrap is not None:
        yield bootstrap
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


def measure(store: Path, bots: int | None, bootstrap: str | None) -> dict[str, Any]:
    before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="model-store-bench-") as scratch,
        broker_at(bootstrap) as servers,
    ):
        routes_file, disk = Path(scratch) / "routes.json", Path(scratch) / "disk-cache"
        published = publish(store, bots, servers, routes_file)
        first = in_fresh_process(servers, routes_file, disk, "first")
        from_disk = in_fresh_process(servers, routes_file, disk, "disk")
    return {
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "broker": "embedded Tansu" if bootstrap is None else bootstrap,
        "load_average_before": [round(x, 2) for x in before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "published": published,
        "first_load": first,
        "disk_cache_load": from_disk,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", type=Path, help="a build directory (fleetserve build)")
    parser.add_argument("--bots", type=int, help="only the first N bots")
    parser.add_argument("--bootstrap", help="an existing cluster instead of an embedded broker")
    parser.add_argument("--out", type=Path, default=Path("bench/results/model_store.json"))
    parser.add_argument("--phase", choices=["first", "disk"], help=argparse.SUPPRESS)
    parser.add_argument("--routes", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--disk", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(load_all(args.bootstrap, args.routes, args.disk, args.phase == "disk")))
        return
    if args.store is None:
        parser.error("--store is required")
    results = measure(args.store, args.bots, args.bootstrap)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
