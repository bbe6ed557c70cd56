"""`fleetserve bench`: run the scenarios in one world and write every result."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetserve_bench import report
from fleetserve_bench.density import density_run
from fleetserve_bench.latency import Pace, latency_sweep
from fleetserve_bench.machine import describe_machine
from fleetserve_bench.rebalance import rebalance_run
from fleetserve_bench.scaling import scaling_plot, scaling_points, scaling_result
from fleetserve_bench.scenarios import (
    Load,
    Measured,
    faust_run,
    fleetserve_run,
    relay_run,
)
from fleetserve_bench.world import bench_world

logger = logging.getLogger(__name__)

Echo = Callable[[str], None]


@dataclass(frozen=True)
class BenchPlan:
    """Sizes of one run; ``quick()`` is the CI smoke run, ``full()`` the published one."""

    bots: int
    queries: int
    no_cache_queries: int
    faust_queries: int
    latency_fractions: tuple[float, ...]
    """Offered rates as fractions of the saturation just measured; the last is the headline
    (the issue's 25 %), the lower ones show where each system starts to queue."""
    latency_s: float
    workers: int = 2
    # Quick runs measure fleetserve's default delivery only: each system costs a group
    # start and a warm-up (about 8 s here), and --quick must stay under 60 s.
    latency_deliveries: tuple[str, ...] = ("exactly-once", "at-least-once")
    # Cost as work grows (full runs): active bots x pass sizes, zipf and uniform; the
    # largest count runs in the density world, whose fleet is that large.
    scaling_actives: tuple[int, ...] = ()
    scaling_pass_sizes: tuple[int, ...] = (500,)
    scaling_queries: int = 60_000
    # Density and rebalance run in full runs only: at quick sizes they would push the
    # smoke run past its 3 minutes.
    density_bots: int = 0
    rebalance: bool = False
    fits_memory: str = "4GiB"
    churn_memory: str = "1GiB"
    fits_queries: int = 20_000
    churn_queries: int = 100_000
    rebalance_per_s: float = 1_000
    rebalance_s: float = 30
    zipf_s: float = 1.1
    seed: int = 7
    timeout_s: float = 300.0

    @classmethod
    def quick(cls) -> BenchPlan:
        return cls(bots=40, queries=10_000, no_cache_queries=2_000, faust_queries=300,
                   latency_fractions=(0.25,), latency_s=2, timeout_s=60,
                   latency_deliveries=("exactly-once",))  # fmt: skip

    @classmethod
    def full(cls) -> BenchPlan:
        # latency_s: a paced producer writes at most one batch per partition per 5 ms
        # linger, and on Tansu a partition's latency grows with its batches (latency.py).
        return cls(bots=1_000, queries=200_000, no_cache_queries=20_000, faust_queries=3_000,
                   latency_fractions=(0.02, 0.06, 0.12, 0.25), latency_s=10,
                   density_bots=10_000, rebalance=True,
                   scaling_actives=(10, 100, 1_000), scaling_pass_sizes=(500, 2_000))  # fmt: skip


def run_bench(plan: BenchPlan, out: Path, quick: bool, say: Echo) -> dict[str, dict[str, Any]]:
    machine = describe_machine()
    results: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()

    def echo(line: str) -> None:  # where the wall time goes, for the 60 s of --quick
        say(f"[{time.perf_counter() - started:5.1f} s] {line}")

    with bench_world(plan.bots, plan.seed) as world:
        echo(f"world ready: broker, topics, {plan.bots} bots deployed")
        # Same seed, so no-cache and faust answer a prefix of the same query sequence.
        load = Load(plan.queries, plan.zipf_s, plan.seed)
        small = Load(plan.no_cache_queries, plan.zipf_s, plan.seed)
        tiny = Load(plan.faust_queries, plan.zipf_s, plan.seed)
        systems = [
            # Warmed (one query per bot, not measured): the relay has no models to load,
            # and the no-cache run below is what serving without warm models costs.
            fleetserve_run(
                world,
                "fleetserve",
                plan.workers,
                load,
                load.queries,
                plan.timeout_s,
                (),
                world.bot_ids,
            ),
            relay_run(world, load, plan.timeout_s),
            fleetserve_run(
                world,
                "no-cache",
                plan.workers,
                small,
                small.queries,
                plan.timeout_s,
                ["--model-memory", "1"],
            ),
            faust_run(world, tiny, tiny.queries, plan.timeout_s),
        ]
        for system in systems:
            echo(f"throughput {system.system}: {system.per_s:,.0f}/s over {system.outputs:,}")
        results["throughput"] = throughput_result(plan, systems)
        # Fractions of the saturation just measured, each with the same paced producer.
        rates = [max(100.0, round(f * systems[0].per_s, -2)) for f in plan.latency_fractions]
        pace = Pace(rates[-1], plan.latency_s, plan.zipf_s)
        latency = latency_sweep(world, plan.workers, rates, pace, plan.latency_deliveries)
        results["latency"] = {
            **latency,
            "bots": plan.bots,
            "fraction_of_saturation": plan.latency_fractions[-1],
            "fractions_of_saturation": plan.latency_fractions,
        }
        for point in latency["rates"]:
            for measured in point["systems"]:
                queued = " (queueing)" if measured["queueing"] else ""
                echo(f"latency {measured['system']} at {point['offered_per_s']:,.0f} q/s: "
                     f"{measured['latency_ms']}{queued}")  # fmt: skip
        if plan.scaling_actives:
            points = scaling_points(
                world, plan.scaling_actives, plan.scaling_pass_sizes, plan.scaling_queries,
                plan.workers, plan.timeout_s, echo,
            )  # fmt: skip
            results["scaling"] = {"points": points}
        if plan.rebalance:
            results["rebalance"] = rebalance_run(
                world,
                offered_per_s=plan.rebalance_per_s,
                duration_s=plan.rebalance_s,
                timeout_s=plan.timeout_s,
            )
            echo(f"rebalance: {results['rebalance']['outcomes']}")
    if plan.density_bots:
        results["density"] = density_result(plan, echo)
    if "scaling" in results:
        largest = results.get("density", {}).pop("scaling_points", [])
        points = results["scaling"]["points"] + largest
        results["scaling"] = scaling_result(points, plan.scaling_queries)
        scaling_plot(out, results["scaling"])
    for name, result in results.items():
        result["machine"] = machine
        result["quick"] = quick
        result["wall_s"] = round(time.perf_counter() - started, 1)
        report.write_json(out, name, result)
    report.throughput_plot(out, results["throughput"])
    report.write_summary(out, results, machine, quick)
    return results


def density_result(plan: BenchPlan, echo: Echo) -> dict[str, Any]:
    """Its own world: the fleet size differs from the throughput one."""
    with bench_world(plan.density_bots, plan.seed) as world:
        fits = density_run(
            world, workers=1, model_memory=plan.fits_memory, queries=plan.fits_queries,
            timeout_s=plan.timeout_s, variant="fits",
        )  # fmt: skip
        churn = density_run(
            world, workers=2, model_memory=plan.churn_memory, queries=plan.churn_queries,
            timeout_s=plan.timeout_s, variant="churn",
        )  # fmt: skip
        # The largest point of the scaling curve needs this world's fleet.
        largest = (
            scaling_points(
                world, [plan.density_bots], plan.scaling_pass_sizes[:1], plan.scaling_queries,
                plan.workers, plan.timeout_s, echo, ["--model-memory", plan.fits_memory],
            )
            if plan.scaling_actives
            else []
        )  # fmt: skip
    echo(f"density: fits RSS peak {max(fits['rss']['peak_bytes'], default=0) / 1e9:.2f} GB")
    return {"scenario": "density", "bots": plan.density_bots, "variants": [fits, churn],
            "systems": [fits, churn], "scaling_points": largest}  # fmt: skip


def throughput_result(plan: BenchPlan, systems: list[Measured]) -> dict[str, Any]:
    by_name = {s.system: s for s in systems}
    fleet = by_name["fleetserve"]
    ratios = {
        f"fleetserve/{name}": round(fleet.per_s / other.per_s, 2)
        for name, other in by_name.items()
        if name != "fleetserve" and other.per_s > 0
    }
    return {
        "scenario": "throughput",
        "bots": plan.bots,
        "zipf_s": plan.zipf_s,
        "queries": plan.queries,
        "workers": plan.workers,
        "systems": [s.as_json() for s in systems],
        "ratios": ratios,
        "note": "no-cache and faust answer only the first queries of the same backlog; "
        "rates are outputs between the first and last output timestamp",
    }
