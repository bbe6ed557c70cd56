"""Fixed against adaptive pass size: the same preloaded Zipf traffic, alternating runs.

Run: python bench/components/pass_size_bench.py [--bots 1000] [--queries 100000]
                                              [--rounds 2] [--out bench/results/pass_size.json]

Each round runs a 2-worker group with passes fixed at --max-batch (500, ``--max-pass 500``)
and one with the adaptive pass size (the defaults: up to 4,000 records while passes come
back full and finish within 250 ms), each warmed first with one query per bot. Runs
alternate so that a change in the shared machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from fleetserve_bench.scenarios import Load, fleetserve_run
from fleetserve_bench.world import bench_world

VARIANTS: dict[str, tuple[str, ...]] = {"fixed-500": ("--max-pass", "500"), "adaptive": ()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/pass_size.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs: list[dict[str, Any]] = []
    with bench_world(args.bots, seed=7) as world:
        load = Load(args.queries, 1.1, 7)
        for round_number in range(args.rounds):
            for name, extra in VARIANTS.items():
                system = f"passes-{name}-{round_number}"
                measured = fleetserve_run(
                    world, system, 2, load, load.queries, 300, extra, world.bot_ids
                )
                run = {"variant": name, "round": round_number, **measured.as_json()}
                runs.append(run)
                cost = run["cpu_us_per_output"]
                print(
                    f"{name:10s} round {round_number}: {run['per_s']:>9,.0f} replies/s, "
                    f"CPU-us per reply: workers {cost['system']}, broker {cost['broker']}; "
                    f"load avg {run['load_average_after'][0]}"
                )
    result = {
        "benchmark": "pass_size",
        "bots": args.bots,
        "queries_per_run": args.queries,
        "zipf_s": 1.1,
        "workers": 2,
        "cpu_count": os.cpu_count(),
        "runs": runs,
        "mean_per_s": {
            name: round(sum(r["per_s"] for r in runs if r["variant"] == name) / args.rounds, 1)
            for name in VARIANTS
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["mean_per_s"]), "->", args.out)


if __name__ == "__main__":
    main()
