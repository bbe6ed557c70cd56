"""Where a fleet bot's build time goes: CPU per phase, one process, a sample of a fleet.

Run: python bench/components/build_phases_bench.py [--bots 10000] [--every 50] [--seed 42]
                                                  [--out bench/results/build_phases.json]

Draws the fleet of ``fleet_bench.py`` (same seed), builds every ``--every``-th bot in this
process with the default build, and charges the process CPU time (``time.process_time``,
every thread) spent inside each phase of ``models/pipeline.build_model`` to that phase.
Phases nest (``build_model`` holds the others), so shares add up past 100 %.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetserve.bots.discover import find_bots
from fleetserve.bots.fleet import make_fleet
from fleetserve.bots.writer import write_fleet
from fleetserve.builder import fleet
from fleetserve.builder.config import BuildConfig
from fleetserve.models import kernel, pipeline

PHASES = (
    "search", "_refit", "gate_published", "quantize_int8", "quantize_int4", "_base_config",
    "_latency",
    "new_session", "export_onnx", "plan_folds", "calibrate_threshold", "encode",
)  # fmt: skip
CPU: collections.defaultdict[str, float] = collections.defaultdict(float)


def charged(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            CPU[name] += time.process_time() - started

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("bench/results/build_phases.json"))
    args = parser.parse_args()
    for name in PHASES:
        if hasattr(pipeline, name):  # an older tree, measured side by side, may lack one
            setattr(pipeline, name, charged(name, getattr(pipeline, name)))
    for name in ("load_source", "build_bot"):  # the names builder/fleet.py calls them by
        setattr(fleet, name, charged(name, getattr(fleet, name)))
    work = Path(tempfile.mkdtemp(prefix="build-phases-"))
    write_fleet(
        make_fleet(args.bots, seed=args.seed)[:: args.every], work / "fleet", seed=args.seed
    )
    sources = find_bots(work / "fleet")
    kernel.warm_up()
    started = time.process_time()
    for source in sources:
        fleet.build_source(source, BuildConfig(), work / "store")
    total = time.process_time() - started
    ranked = sorted(CPU.items(), key=lambda item: -item[1])
    per_bot = {name: round(seconds / len(sources) * 1000, 1) for name, seconds in ranked}
    result = {
        "benchmark": "build_phases",
        "bots_sampled": len(sources),
        "of_fleet": args.bots,
        "seed": args.seed,
        "cpu_ms_per_bot": round(total / len(sources) * 1000, 1),
        "cpu_ms_per_bot_by_phase": per_bot,
        "load_average": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
