"""The worker's model cache with real snapshots: cold loads, resident density, churn.

Run: python bench/components/cache_bench.py [--quick] [--bots 300] [--sessions 10000]
                                      [--no-kafka] [--store DIR] [--out bench/results/cache.json]

1. Cold load: every distinct snapshot loaded once through ModelCache + SnapshotLoader
   (manifest, sha256 checks, ONNX guard, session, metadata); the loader's own miss ->
   ready-session time and the wall time of ``acquire``. Targets: p50 <= 2 ms, p99 <= 10 ms.
2. Density: ``--sessions`` cache entries resident at once, VmRSS growth total and per
   session (target: 10,000 within 3 GB), against what the cache counts (resident_bytes).
3. Churn: a budget smaller than the fleet, batches of uniformly random routes acquired
   with ``pinned`` (misses load on the pool) and one query run per model; hit rate,
   evictions/s, and the maximum over time of real RSS growth against the budget (target:
   within 10 %).
4. The models topic (``--store kafka``): ``model_store_bench.py`` on the same store (first
   load p99 <= 20 ms, disk-cache load p99 <= 10 ms; see there). ``--no-kafka`` skips it.

Building 10,000 real bots takes about 5 minutes, so by default a few hundred distinct real
bots are built (``make_fleet`` + ``build_bot``, one process per core) and the density and
churn phases make many *distinct cache entries* from them: entry ``bot~k`` loads ``bot``'s
snapshot into its own new session. The output says so. ``--store`` points at an existing
store (e.g. a 10,000-bot fleet build) to use its snapshots instead.

Each phase runs in a fresh process, so memory freed by one phase cannot hide the next
one's cost. numpy's BLAS is pinned to one thread, as in every fleetserve process.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import itertools
import json
import multiprocessing
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fleetserve.bots.definition import BotDefinition
from fleetserve.bots.fleet import make_fleet
from fleetserve.builder.build import build_bot
from fleetserve.builder.config import BuildConfig
from fleetserve.cache.footprint import process_meter
from fleetserve.cache.heap import glibc_heap_probe
from fleetserve.cache.loader import SnapshotLoader
from fleetserve.cache.model import CacheStats, LoadedModel
from fleetserve.cache.model_cache import ModelCache
from fleetserve.core.route import Route
from fleetserve.models.runtime import predict
from fleetserve.store.local import LocalDirectoryStore

MIB = 2**20
GB = 10**9
REPLICA = "~"
QUERY = ["can you tell me the balance of my checking account"]


@dataclass(frozen=True)
class Size:
    bots: int
    sessions: int
    churn_entries: int
    churn_budget_mib: int
    churn_batches: int
    churn_batch_routes: int


FULL = Size(300, 10_000, 3_000, 256, 3_000, 8)
QUICK = Size(30, 500, 600, 64, 400, 8)


# -- the store -----------------------------------------------------------------------------

_FLEET: list[BotDefinition] = []  # inherited by the forked build processes


def _build_one(args: tuple[int, str]) -> str:
    index, root = args
    result = build_bot(_FLEET[index], BuildConfig(), LocalDirectoryStore(Path(root)))
    return result.quantization or result.status


def build_store(root: Path, bots: int, seed: int) -> dict[str, Any]:
    """``bots`` real bots of fleet ``seed`` built into ``root``, one process per core."""
    started = time.perf_counter()
    _FLEET[:] = make_fleet(bots, seed=seed)
    jobs = [(index, str(root)) for index in range(bots)]
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        kinds = pool.map(_build_one, jobs, chunksize=4)
    return {
        "bots": bots,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "quantization": {kind: kinds.count(kind) for kind in sorted(set(kinds))},
    }


def snapshot_routes(store: LocalDirectoryStore, limit: int | None = None) -> list[Route]:
    routes = []
    for bot in store.bots()[:limit]:
        for version in store.versions(bot)[:1]:
            sha = store.read_manifest(bot, version)["model"]["sha256"]
            routes.append(Route(bot, "real", version, sha))
    return routes


def replicas(routes: Sequence[Route], count: int) -> list[Route]:
    """``count`` distinct cache entries cycling over the real snapshots."""
    source = itertools.cycle(routes)
    return [
        replace(route, bot_id=f"{route.bot_id}{REPLICA}{k}")
        for k, route in zip(range(count), source, strict=False)
    ]


class ReplicaLoader:
    """Loads ``bot~k`` from ``bot``'s snapshot into a session of its own."""

    def __init__(self, store: LocalDirectoryStore) -> None:
        self.inner = SnapshotLoader(store)

    def __call__(self, route: Route) -> LoadedModel:
        real = replace(route, bot_id=route.bot_id.split(REPLICA, 1)[0])
        return replace(self.inner(real), route=route)


# -- measuring -----------------------------------------------------------------------------


def vm_rss() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


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


def warm_up(store: LocalDirectoryStore, route: Route) -> None:
    """onnxruntime's and numpy's one-time allocations are not any session's cost."""
    model = SnapshotLoader(store)(route)
    predict(model.session, model.metadata.featurizer, QUERY * 8)


def meter_counts() -> dict[str, Any]:
    meter = process_meter()
    return {
        "measured": meter.measured,
        "estimated": meter.estimated,
        "scale": round(meter.scale, 4),
        "heap_probe": glibc_heap_probe() is not None,
    }


# -- phases (each in its own process) ------------------------------------------------------


def phase_cold(store: LocalDirectoryStore, size: Size) -> dict[str, Any]:
    routes = snapshot_routes(store, size.bots)
    warm_up(store, routes[0])
    cache = ModelCache(SnapshotLoader(store), budget_bytes=100 * GB)
    loader_s, acquire_s, footprints = [], [], []
    for route in routes:
        started = time.perf_counter()
        model = cache.acquire(route)
        acquire_s.append(time.perf_counter() - started)
        loader_s.append(model.load_seconds)
        footprints.append(model.footprint_bytes)
        cache.release(model)
    stats = cache.stats()
    cache.close()
    return {
        "snapshots": len(routes),
        "loader_ms": percentiles(loader_s),
        "acquire_ms": percentiles(acquire_s),
        "footprint_kib": percentiles(footprints, 1 / 1024),
        "loads": stats.loads,
        "footprints": meter_counts(),
        "targets_ms": {"p50": 2.0, "p99": 10.0},
        "within_target": percentiles(loader_s)["p50"] <= 2 and percentiles(loader_s)["p99"] <= 10,
        "page_cache": "warm (the snapshots were just built or read)",
    }


def phase_density(store: LocalDirectoryStore, size: Size) -> dict[str, Any]:
    real = snapshot_routes(store, size.bots)
    entries = replicas(real, size.sessions)
    warm_up(store, real[0])
    cache = ModelCache(ReplicaLoader(store), budget_bytes=100 * GB)
    before = vm_rss()
    started = time.perf_counter()
    per = size.churn_batch_routes
    for start in range(0, len(entries), per):
        with cache.pinned(entries[start : start + per]) as models:
            answer(models)
    loaded_s = time.perf_counter() - started
    after_load = vm_rss()
    with cache.pinned(entries) as models:  # all hits: a second run of every session
        answer(models)
    after_run = vm_rss()
    stats = cache.stats()
    cache.close()
    n = stats.resident_models
    grown = after_run - before
    return {
        "sessions": n,
        "distinct_snapshots": len(real),
        "entries_from": f"{len(real)} real snapshots, each loaded into ~{n // len(real)} "
        "separate sessions (distinct cache entries bot~k), in pinned batches of "
        f"{size.churn_batch_routes} with one query each",
        "load_seconds": round(loaded_s, 2),
        "rss_growth_mib": round((after_load - before) / MIB, 1),
        "rss_growth_mib_after_a_second_run_each": round(grown / MIB, 1),
        "rss_kib_per_session": round((after_load - before) / n / 1024, 1),
        "cache_resident_mib": round(stats.resident_bytes / MIB, 1),
        "cache_kib_per_session": round(stats.resident_bytes / n / 1024, 1),
        "cache_resident_over_rss_growth": round(stats.resident_bytes / grown, 3),
        "rss_growth_10000_sessions_gb": round(10_000 * grown / n / GB, 2),
        "target_10000_within_gb": 3.0,
        "footprints": meter_counts(),
    }


def answer(models: dict[Route, LoadedModel | Any]) -> None:
    for model in models.values():
        assert isinstance(model, LoadedModel), model
        predict(model.session, model.metadata.featurizer, QUERY)


def phase_churn(store: LocalDirectoryStore, size: Size, seed: int) -> dict[str, Any]:
    real = snapshot_routes(store, size.bots)
    fleet = replicas(real, size.churn_entries)
    rng = random.Random(seed)  # noqa: S311 - a reproducible access stream, not security
    stream = [rng.sample(fleet, size.churn_batch_routes) for _ in range(size.churn_batches)]
    budget = size.churn_budget_mib * MIB
    warm_up(store, real[0])
    cache = ModelCache(ReplicaLoader(store), budget_bytes=budget, load_threads=2)
    heap = glibc_heap_probe() or (lambda: 0)
    baseline, heap_baseline = vm_rss(), heap()
    samples: list[Sample] = []
    started = time.perf_counter()
    for batch in stream:
        with cache.pinned(batch) as models:
            answer(models)
        elapsed, resident = time.perf_counter() - started, cache.stats().resident_bytes
        samples.append(Sample(elapsed, vm_rss() - baseline, heap() - heap_baseline, resident))
    seconds = time.perf_counter() - started
    stats = cache.stats()
    cache.close()
    return churn_report(size, budget, seconds, samples, stats, meter_counts())


@dataclass(frozen=True)
class Sample:
    seconds: float
    rss: int
    heap: int
    resident: int


def churn_report(
    size: Size,
    budget: int,
    seconds: float,
    samples: list[Sample],
    stats: CacheStats,
    footprints: dict[str, Any],
) -> dict[str, Any]:
    max_rss = max(s.rss for s in samples)
    accesses = stats.hits + stats.misses
    step = max(1, len(samples) // 20)
    return {
        "fleet_entries": size.churn_entries,
        "budget_mib": size.churn_budget_mib,
        "batches": size.churn_batches,
        "routes_per_batch": size.churn_batch_routes,
        "accesses": accesses,
        "seconds": round(seconds, 2),
        "hit_rate": round(stats.hits / accesses, 4),
        # Uniform access: the chance the route is resident, i.e. resident / fleet entries.
        "hit_rate_expected_uniform": round(stats.resident_models / size.churn_entries, 4),
        "loads": stats.loads,
        "evictions": stats.evictions,
        "evictions_per_s": round(stats.evictions / seconds, 1),
        "max_cache_resident_over_budget": round(max(s.resident for s in samples) / budget, 4),
        "max_heap_in_use_growth_over_budget": round(max(s.heap for s in samples) / budget, 4),
        "max_rss_growth_mib": round(max_rss / MIB, 1),
        "max_rss_growth_over_budget": round(max_rss / budget, 4),
        "final_rss_growth_over_budget": round(samples[-1].rss / budget, 4),
        "budget_holds_within_10_percent": max_rss <= 1.10 * budget,
        "resident_models_at_end": stats.resident_models,
        "timeline_mib": [
            {
                "s": round(s.seconds, 2),
                "rss_growth": round(s.rss / MIB, 1),
                "heap_in_use_growth": round(s.heap / MIB, 1),
                "cache_resident": round(s.resident / MIB, 1),
            }
            for s in samples[::step]
        ],
        "footprints": footprints,
    }


PHASES = {"cold", "density", "churn"}


def run_phase(phase: str, store: Path, size: Size, seed: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--phase", phase, "--store", str(store), "--seed", str(seed)]
    argv += ["--size", json.dumps(size.__dict__)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def models_topic(store: Path, bots: int) -> dict[str, Any]:
    """``model_store_bench.py`` on this store: publish, first loads, disk-cache loads."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        script = str(Path(__file__).with_name("model_store_bench.py"))
        argv = [sys.executable, script, "--store", str(store), "--bots", str(bots)]
        subprocess.run([*argv, "--out", out.name], check=True, stdout=subprocess.DEVNULL)
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
    return result


def in_child(phase: str, store: Path, size: Size, seed: int) -> dict[str, Any]:
    local = LocalDirectoryStore(store)
    if phase == "cold":
        return phase_cold(local, size)
    if phase == "density":
        return phase_density(local, size)
    return phase_churn(local, size, seed)


def measure(args: argparse.Namespace, size: Size, store: Path) -> dict[str, Any]:
    built: dict[str, Any] = {"existing_store": str(store)}
    if args.store is None:
        built = build_store(store, size.bots, args.seed)
    return {
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "quick": args.quick,
        "store": built,
        "cold_load": run_phase("cold", store, size, args.seed),
        "density": run_phase("density", store, size, args.seed),
        "churn": run_phase("churn", store, size, args.seed),
        **({"kafka_store": models_topic(store, size.bots)} if args.kafka else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke sizes")
    parser.add_argument("--bots", type=int, help="distinct real bots to build")
    parser.add_argument("--sessions", type=int, help="resident sessions for density")
    parser.add_argument("--store", type=Path, help="use this store instead of building one")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cache.json"))
    parser.add_argument("--no-kafka", dest="kafka", action="store_false", help="skip phase 4")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        size = Size(**json.loads(args.size))
        print(json.dumps(in_child(args.phase, args.store, size, args.seed)))
        return
    size = QUICK if args.quick else FULL
    size = replace(size, bots=args.bots or size.bots, sessions=args.sessions or size.sessions)
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as scratch:
        results = measure(args, size, args.store or Path(scratch))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
