"""The worker's pass without Kafka: CPU per reply of decode, route, featurize, run, encode.

Run: python bench/components/hotpath_bench.py [--bots 1000] [--pass-size 500]
         [--active 10,100,1000] [--profile] [--stages] [--quantization auto|int4|int8]
         [--out bench/results/hotpath.json]

The real ``BatchProcessor`` of a worker (its model cache, real ONNX snapshots of the bench
fleet, built with ``--quantization`` as given: ``auto`` keeps these small bots int8; the
reply encoding and the per-bot statistics' facts) answers passes of records built the way
the bench's load generator builds them (query v1 bytes, keyed by bot, Zipf s = 1.1 or
uniform over the active bots). CPU time is the process's own
(``time.process_time``), so other jobs on the machine do not inflate it; only Kafka's
consume, produce and commit are left out (the end-to-end bench has them). The heap is
settled after the warm-up pass (``serving/heap.py``), as the worker's is. ``--profile``
adds a cProfile breakdown by stage of one run; ``--stages`` times each stage alone on
the same passes (``fleetserve_bench/stages.py``): their sum is the pass with no bookkeeping.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import logging
import os
import pstats
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from fleetserve.builder.config import BuildConfig
from fleetserve.cache.loader import SnapshotLoader
from fleetserve.cache.model_cache import ModelCache
from fleetserve.core.clock import now_ms
from fleetserve.core.outcome import WorkerIdentity
from fleetserve.core.records import InboundRecord
from fleetserve.core.route import Route
from fleetserve.errors import QueryFailed
from fleetserve.models.config import DEFAULT_QUANTIZATION, QUANTIZATION_MODES
from fleetserve.serving.answer import AnswerContext
from fleetserve.serving.heap import settle_heap
from fleetserve.serving.processor import BatchProcessor, ProcessorConfig
from fleetserve.store.local import LocalDirectoryStore
from fleetserve_bench.machine import describe_machine
from fleetserve_bench.procstat import best_cpu_seconds
from fleetserve_bench.stages import stage_costs
from fleetserve_bench.traffic import query_value, zipf_weights
from fleetserve_bench.world import ensure_fleet, fleet_store_dir, newest_route

PARTITIONS = 12

# Stages by their entry points (file suffix, function), each counted with everything it
# calls; chosen so that none calls another. The rest of the pass is "pass bookkeeping".
STAGES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("decode + validate", (("serving/decode.py", "decode_query"),)),
    ("select, plan, route", (("serving/plan.py", "select"), ("serving/plan.py", "plan_batch"))),
    ("model cache (pin)", (("cache/model_cache.py", "pinned"),)),
    (
        "featurize",
        (("models/featurize_pass.py", "hash_pass"), ("models/featurize.py", "featurize")),
    ),
    ("pad", (("models/featurize.py", "to_padded"), ("models/featurize_pass.py", "padded"))),
    ("onnxruntime run", (("~", "<built-in method onnxruntime"),)),
    ("rank (per pass)", (("serving/answer.py", "_ranked"),)),
    ("build reply", (("serving/answer.py", "_reply"), ("serving/replies.py", "build_reply"))),
    ("encode reply + stats facts", (("serving/outcomes.py", "reply"),)),
    ("dead letters", (("serving/outcomes.py", "failure"),)),
)


def bot_routes(store: LocalDirectoryStore) -> dict[str, Route]:
    return {bot_id: newest_route(store, bot_id) for bot_id in store.bots()}


def draw_bots(bots: Sequence[str], count: int, law: str, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    weights = zipf_weights(len(bots), 1.1) if law == "zipf" else None
    return [bots[i] for i in rng.choice(len(bots), size=count, p=weights)]


def make_records(
    bots: Sequence[str], texts: dict[str, list[str]], count: int, law: str, seed: int
) -> list[InboundRecord]:
    cursor = {bot: itertools.cycle(texts[bot]) for bot in bots}
    sent = now_ms()
    records = []
    for offset, bot in enumerate(draw_bots(bots, count, law, seed)):
        key = bot.encode()
        value = query_value(bot, next(cursor[bot]), sent)
        partition = hash(bot) % PARTITIONS
        records.append(InboundRecord("queries", partition, offset, key, value, (), sent))
    return records


@contextmanager
def processor(store_dir: Path, routes: dict[str, Route]) -> Iterator[BatchProcessor]:
    cache = ModelCache(SnapshotLoader(LocalDirectoryStore(store_dir)), budget_bytes=8 * 1024**3)

    def resolve(bot_id: str, _stage: str) -> Route:
        route = routes.get(bot_id)
        if route is None:
            raise QueryFailed("unknown_bot", f"no bot {bot_id}", phase="route")
        return route

    config = ProcessorConfig("dead-letters", "real", 64 * 1024, max_rows_per_bot=10**9)
    context = AnswerContext(WorkerIdentity("bench-1", "bench"), "replies")
    try:
        yield BatchProcessor(config, context, resolve, cache.pinned)
    finally:
        cache.close()


def run_passes(
    proc: BatchProcessor, records: Sequence[InboundRecord], pass_size: int
) -> tuple[int, int]:
    replies = dead = 0
    for start in range(0, len(records), pass_size):
        result = proc.process(records[start : start + pass_size])
        replies += sum(result.replies.values())
        dead += sum(result.dead_letters.values())
    return replies, dead


def measure(
    proc: BatchProcessor, records: Sequence[InboundRecord], pass_size: int, repeats: int = 3
) -> dict[str, Any]:
    run_passes(proc, records, pass_size)  # warm: every model loaded, caches filled
    settle_heap()  # as `fleetserve worker` does once it serves
    counts = (0, 0)

    def passes() -> None:
        nonlocal counts
        counts = run_passes(proc, records, pass_size)

    best = best_cpu_seconds(passes, repeats)
    replies, dead = counts
    distinct = [
        len({r.key for r in records[s : s + pass_size]}) for s in range(0, len(records), pass_size)
    ]
    return {
        "pass_size": pass_size,
        "records": len(records),
        "replies": replies,
        "dead_letters": dead,
        "bots_per_pass_mean": round(float(np.mean(distinct)), 1),
        "cpu_us_per_reply": round(best / max(replies, 1) * 1e6, 2),
        "replies_per_cpu_s": round(max(replies, 1) / best),
    }


def profile(call: Callable[[], object]) -> dict[str, float]:
    """Share of the pass's CPU time in each stage (cProfile on CPU time, cumulative)."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    call()
    profiler.disable()
    raw: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(own for (_cc, _nc, own, _ct, _callers) in raw.values())
    shares: dict[str, float] = {}
    for stage, entries in STAGES:
        shares[stage] = sum(
            cumulative
            for (filename, _line, name), (_cc, _nc, _own, cumulative, _callers) in raw.items()
            if any(filename.endswith(f) and name.startswith(n) for f, n in entries)
        )
    shares["pass bookkeeping"] = max(0.0, total - sum(shares.values()))
    ranked = sorted(shares.items(), key=lambda kv: -kv[1])
    return {stage: round(seconds / total, 3) for stage, seconds in ranked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=1000, help="fleet size (built once, cached)")
    parser.add_argument("--active", default="10,100,1000", help="active bots, comma-separated")
    parser.add_argument("--pass-sizes", default="500", help="records per pass, comma-separated")
    parser.add_argument("--laws", default="zipf,uniform")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--stages",
        action="store_true",
        help="also time each stage of the pass alone (fleetserve_bench/stages.py)",
    )
    parser.add_argument("--label", default="", help="a name for this variant in the output")
    parser.add_argument(
        "--quantization",
        choices=QUANTIZATION_MODES,
        default=DEFAULT_QUANTIZATION,
        help="the fleet's table format (each configuration is cached in a store of its own)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/hotpath.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = BuildConfig(quantization=args.quantization)
    store_dir = fleet_store_dir(args.bots, 7, config)
    fleet = ensure_fleet(args.bots, 7, store_dir, config)
    texts = {bot.bot_id: [u.text for u in bot.utterances] for bot in fleet}
    routes = bot_routes(LocalDirectoryStore(store_dir))
    bots = sorted(routes)
    runs: list[dict[str, Any]] = []
    profiles: dict[str, dict[str, float]] = {}
    with processor(store_dir, routes) as proc:
        for law, active, pass_size in itertools.product(
            args.laws.split(","),
            [int(a) for a in args.active.split(",")],
            [int(p) for p in args.pass_sizes.split(",")],
        ):
            chosen = bots[:active]
            records = make_records(chosen, texts, args.records, law, seed=5)
            run = {"law": law, "active_bots": active, **measure(proc, records, pass_size)}
            if args.stages:
                run["stages"] = stage_costs(proc, records, pass_size)
            runs.append(run)
            print(orjson.dumps(run).decode(), flush=True)
            if (
                args.profile
                and law == "zipf"
                and active == max(int(a) for a in args.active.split(","))
            ):
                profiles[f"{law}-{active}-{pass_size}"] = profile(
                    lambda r=records, p=pass_size: run_passes(proc, r, p)  # type: ignore[misc]
                )
    result = {
        "benchmark": "hotpath",
        "label": args.label,
        "quantization": args.quantization,
        "bots": args.bots,
        "load_average": os.getloadavg(),
        "runs": runs,
        "profiles": profiles,
        "machine": describe_machine(),
    }
    for name, shares in profiles.items():
        print(name)
        for stage, share in shares.items():
            print(f"  {share * 100:5.1f} %  {stage}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
