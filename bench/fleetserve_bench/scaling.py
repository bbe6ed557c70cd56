"""Cost as work grows: the same backlog answered while the number of active bots and the
pass size vary. A multi-tenant server should cost about the same per reply whether the
traffic touches 10 bots or 10,000.

Each point is a fresh 2-worker group in its own namespace answering ``queries`` queries
drawn over the first ``active`` bots of the fleet, under Zipf (s = 1.1) or uniformly; the
workers' CPU per reply comes from /proc (robust to other jobs on the machine), replies/s
from the replies' own timestamps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from fleetserve_bench.scenarios import Load, fleetserve_run
from fleetserve_bench.world import BenchWorld

LAWS: Mapping[str, float] = {"zipf": 1.1, "uniform": 0.0}


def scaling_points(
    world: BenchWorld,
    actives: Sequence[int],
    pass_sizes: Sequence[int],
    queries: int,
    workers: int,
    timeout_s: float,
    echo: Callable[[str], None],
    extra: Sequence[str] = (),
) -> list[dict[str, Any]]:
    points = []
    for law, s in LAWS.items():
        for active in actives:
            for pass_size in pass_sizes:
                name = f"scale-{law}-{active}-p{pass_size}"
                load = Load(queries, s, seed=13, active=active)
                # Warmed first: one query per active bot, not measured, so the curve is
                # the cost of serving and not of each fresh group's first model loads.
                measured = fleetserve_run(
                    world, name, workers, load, queries, timeout_s,
                    # a fixed pass: the adaptive size would otherwise move it
                    [*extra, "--max-batch", str(pass_size), "--max-pass", str(pass_size)],
                    world.bot_ids[:active],
                )  # fmt: skip
                point = {
                    "law": law,
                    "active_bots": active,
                    "pass_size": pass_size,
                    **measured.as_json(),
                }
                points.append(point)
                cost = point["cpu_us_per_output"]
                echo(
                    f"scaling {law} {active:,} bots, pass {pass_size}: "
                    f"{measured.per_s:,.0f}/s, {cost['system']:.1f} CPU-us/reply in workers"
                )
    return points


def scaling_result(points: Sequence[dict[str, Any]], queries: int) -> dict[str, Any]:
    def worker_cost(law: str, active: int) -> float | None:
        found = [
            p["cpu_us_per_output"]["system"]
            for p in points
            if p["law"] == law and p["active_bots"] == active
        ]
        return min(found) if found else None

    actives = sorted({p["active_bots"] for p in points})
    spread = {}
    for law in LAWS:
        low, high = worker_cost(law, actives[0]), worker_cost(law, actives[-1])
        if low and high:
            spread[f"{law}: {actives[-1]:,} / {actives[0]:,} active bots"] = round(high / low, 2)
    return {
        "scenario": "scaling",
        "queries_per_point": queries,
        "systems": list(points),
        "cost_ratio_most_over_fewest_active": spread,
    }


def scaling_plot(out: Path, result: Mapping[str, Any]) -> Path:
    figure, (cost_axis, rate_axis) = plt.subplots(1, 2, figsize=(9, 3.4))
    for law in LAWS:
        for pass_size in sorted({p["pass_size"] for p in result["systems"]}):
            chosen = sorted(
                (p for p in result["systems"] if p["law"] == law and p["pass_size"] == pass_size),
                key=lambda p: p["active_bots"],
            )
            if not chosen:
                continue
            x = [p["active_bots"] for p in chosen]
            label = f"{law}, pass {pass_size}"
            cost_axis.plot(x, [p["cpu_us_per_output"]["system"] for p in chosen], "o-", label=label)
            rate_axis.plot(x, [p["per_s"] for p in chosen], "o-", label=label)
    for axis, title in ((cost_axis, "CPU-us per reply, workers"), (rate_axis, "replies/s")):
        axis.set_xscale("log")
        axis.set_xlabel("active bots")
        axis.set_title(title)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    cost_axis.legend(fontsize=7)
    figure.tight_layout()
    out.mkdir(parents=True, exist_ok=True)  # before the first JSON is written there
    path = out / "scaling.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
