"""CPU per route of pinning and releasing resident models, as a pass does (``ModelCache.pinned``).

Run: python bench/components/pin_bench.py [--routes 200] [--rounds 200]
         [--out bench/results/pin.json]

The 1,000-bot bench fleet's snapshots, loaded once into a real ``ModelCache``; then
``--rounds`` passes each pin and release the same ``--routes`` resident routes, so only the
cache's bookkeeping is measured (lock, ledger, counters, eviction check, gauges), not
loads. CPU time is the process's own (``time.process_time``), best of 7.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from fleetserve.builder.config import BuildConfig
from fleetserve.cache.loader import SnapshotLoader
from fleetserve.cache.model_cache import ModelCache
from fleetserve.core.route import Route
from fleetserve.store.local import LocalDirectoryStore
from fleetserve_bench.machine import write_result
from fleetserve_bench.procstat import best_cpu_seconds
from fleetserve_bench.world import ensure_fleet, fleet_store_dir, newest_route


def cpu_us_per_route(cache: ModelCache, routes: list[Route], rounds: int) -> float:
    with cache.pinned(routes):  # every model loaded once
        pass

    def passes() -> None:
        for _ in range(rounds):
            with cache.pinned(routes) as models:
                assert len(models) == len(routes)

    return best_cpu_seconds(passes, 7) / (rounds * len(routes)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=200, help="distinct routes per pass")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results/pin.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = BuildConfig()
    store_dir = fleet_store_dir(1000, 7, config)
    ensure_fleet(1000, 7, store_dir, config)
    store = LocalDirectoryStore(store_dir)
    routes = [newest_route(store, bot_id) for bot_id in sorted(store.bots())[: args.routes]]
    cache = ModelCache(SnapshotLoader(store), budget_bytes=8 * 1024**3)
    try:
        figure = round(cpu_us_per_route(cache, routes, args.rounds), 2)
    finally:
        cache.close()
    print(f"pin + release: {figure} CPU-us per route")
    write_result(args.out, "pin", {"routes": args.routes, "cpu_us_per_route": figure})


if __name__ == "__main__":
    main()
