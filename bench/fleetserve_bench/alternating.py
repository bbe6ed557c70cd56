"""Worker-option variants on the same preloaded Zipf traffic, in alternating runs.

Each round runs a 2-worker group per variant, each warmed first with one query per bot;
runs alternate so that a change in the shared machine's load hits every variant alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fleetserve_bench.scenarios import Load, fleetserve_run
from fleetserve_bench.world import bench_world

ZIPF_S = 1.1


def arguments(description: str, default_out: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bots", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(default_out))
    return parser.parse_args()


def run_alternating(
    benchmark: str, variants: Mapping[str, Sequence[str]], args: argparse.Namespace
) -> dict[str, Any]:
    """Every variant once per round; writes and returns the runs and the per-variant means."""
    logging.basicConfig(level=logging.WARNING)
    runs: list[dict[str, Any]] = []
    with bench_world(args.bots, seed=7) as world:
        load = Load(args.queries, ZIPF_S, 7)
        for round_number in range(args.rounds):
            for name, extra in variants.items():
                system = f"{benchmark}-{name}-{round_number}"
                measured = fleetserve_run(
                    world, system, 2, load, load.queries, 300, extra, world.bot_ids
                )
                run = {"variant": name, "round": round_number, **measured.as_json()}
                runs.append(run)
                cost = run["cpu_us_per_output"]
                print(
                    f"{name:14s} round {round_number}: {run['per_s']:>9,.0f} replies/s, "
                    f"CPU-us per reply: workers {cost['system']}, broker {cost['broker']}; "
                    f"load avg {run['load_average_after'][0]}"
                )
    result = {
        "benchmark": benchmark,
        "bots": args.bots,
        "queries_per_run": args.queries,
        "zipf_s": ZIPF_S,
        "workers": 2,
        "cpu_count": os.cpu_count(),
        "variants": {name: list(extra) for name, extra in variants.items()},
        "runs": runs,
        "mean_per_s": _mean(runs, variants, lambda r: r["per_s"]),
        "mean_cpu_us_per_reply_workers": _mean(
            runs, variants, lambda r: r["cpu_us_per_output"]["system"]
        ),
        "mean_cpu_us_per_reply_broker": _mean(
            runs, variants, lambda r: r["cpu_us_per_output"]["broker"]
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["mean_per_s"]), "->", args.out)
    return result


def _mean(
    runs: Sequence[dict[str, Any]],
    variants: Mapping[str, Any],
    value: Callable[[dict[str, Any]], float],
) -> dict[str, float | None]:
    means: dict[str, float | None] = {}
    for name in variants:
        values = [value(r) for r in runs if r["variant"] == name]
        means[name] = round(sum(values) / len(values), 1) if values else None
    return means
