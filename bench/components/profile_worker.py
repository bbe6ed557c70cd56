"""Where a worker's time goes per query: py-spy samples of one saturated worker, by stage.

Run: python bench/components/profile_worker.py [--bots 100] [--queries 150000] \
         [--out bench/results/profile.json]

One embedded broker, one `fleetserve worker` process (real Kafka, real models), a backlog
of Zipf-distributed queries produced while py-spy samples the worker at 200 Hz for
--seconds. Each sample's stack is put in the first stage it matches, from the innermost
frame out, so a stage is self time plus everything it calls. py-spy samples native frames
too (``--native``, which pauses the worker for each sample), so the cyclic garbage
collector is a stage of its own instead of a cost of whichever frame allocated.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from fleetserve_bench.metrics_scrape import running_workers
from fleetserve_bench.scenarios import preload
from fleetserve_bench.world import bench_world

# (stage, pattern on "function (file)"), tried innermost frame first.
STAGES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (stage, re.compile(pattern))
    for stage, pattern in (
        ("garbage collector", r"gc_collect_main"),
        ("infer (onnxruntime run)", r"Session\.run|onnxruntime_inference"),
        ("featurize (per pass) + pad", r"models/featurize"),
        ("decode + validate query", r"serving/decode\.py|contracts/|validate_https"),
        ("build + encode reply, stats facts", r"serving/replies\.py|stats/facts\.py|orjson|"
         r"OutcomeWriter\.reply|serving/outcomes\.py"),
        ("rank scores (per pass)", r"_ranked|serving/answer\.py"),
        ("model cache and loads", r"fleetserve/cache/"),
        ("Kafka: produce + commit", r"serving/commit\.py|kafka/transactions\.py"),
        ("Kafka: consume", r"Worker\._poll|Worker\._records|kafka/records\.py"),
        ("plan, fair share, routing", r"serving/plan\.py|routing/"),
        ("crash breaker (in-flight file)", r"fleetserve/breaker/"),
        ("per-bot statistics flush", r"fleetserve/stats/"),
        ("pass bookkeeping", r"serving/processor\.py|serving/worker\.py|serving/outputs\.py"),
    )
)  # fmt: skip


def py_spy() -> str:
    """py-spy beside this interpreter (an unactivated venv), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else (shutil.which("py-spy") or "py-spy")


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for stage, pattern in STAGES:
            if pattern.search(frame):
                return stage
    return "other (threads, interpreter)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=100)
    parser.add_argument("--queries", type=int, default=150_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--warm-s", type=float, default=8.0, help="after the warm-up queries")
    parser.add_argument("--extra", default="", help="worker flags, space-separated")
    parser.add_argument("--out", type=Path, default=Path("bench/results/profile.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raw = Path(tempfile.mkdtemp()) / "worker.raw"
    with bench_world(args.bots, seed=7) as world:
        topics = world.namespace("profile.")
        extra = args.extra.split()
        with running_workers(world, args.workers, "profile", extra, "profile.") as group:
            worker = group[0]
            # A one-query-per-bot warm-up first: the profile is of warm serving, not loads.
            preload(world, topics.name("queries"), len(world.bot_ids) * 5, 0.0, 3)
            time.sleep(args.warm_s)
            spy = subprocess.Popen(
                [py_spy(), "record", "-p", str(worker.pid), "-d", str(args.seconds), "-r", "200",
                 "-f", "raw", "-o", str(raw), "--native"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)
            preload(world, topics.name("queries"), args.queries, 1.1, 7)
            spy.wait()
    samples: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        samples[stage_of(stack.split(";"))] += int(count)
    busy = sum(n for stage, n in samples.items() if not stage.startswith("other"))
    total = sum(samples.values())
    result: dict[str, Any] = {
        "benchmark": "profile_worker",
        "load_average": os.getloadavg(),
        "workers": args.workers,
        "extra": args.extra,
        "bots": args.bots,
        "queries": args.queries,
        "samples": total,
        "share_of_samples": {s: round(n / total, 3) for s, n in samples.most_common()},
        "share_of_busy_samples": {
            s: round(n / busy, 3) for s, n in samples.most_common() if not s.startswith("other")
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    for stage, share in result["share_of_samples"].items():
        print(f"{share * 100:5.1f} %  {stage}")


if __name__ == "__main__":
    main()
