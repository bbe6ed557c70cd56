"""What a worker's bot-stats flush costs per record: schema-checked encode against the builder.

Run: python bench/components/stats_flush_bench.py [--keys 3000] [--rounds 5]
         [--out bench/results/stats_flush.json]

A worker flushes one bot_stats record per (bot, version, stage) that had traffic in the
interval (2 s by default), so at 10,000 uniformly active bots a worker writes thousands of
records per flush. Two ways to serialize the same records, each timed over a whole flush
with ``time.process_time`` (best of ``--rounds``):

- ``schema_checked``: ``contracts.codec.encode`` (fastjsonschema, then the NaN walk, then
  orjson): what workers did before;
- ``built``: ``stats_record`` (refuses a non-finite sum) then ``orjson.dumps``: what
  ``stats/accumulator.py`` does now; ``tests/test_stats_summary.py`` holds the builder to
  the contract instead.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from fleetserve.contracts.codec import encode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.stats.record import FlushInfo, stats_record
from fleetserve.stats.summary import StatsKey, Summary
from fleetserve_bench.machine import write_result
from fleetserve_bench.procstat import best_cpu_seconds

Serialize = Callable[[dict[str, Any]], bytes]


def pending(keys: int, seed: int = 1) -> dict[StatsKey, Summary]:
    """One to three replies per key, as a uniform spread over many bots gives."""
    rng = random.Random(seed)  # noqa: S311 - reproducible load, not a secret
    summaries = {}
    for index in range(keys):
        summary = Summary()
        for _ in range(rng.randrange(1, 4)):
            summary.add_reply(
                confidence=rng.random(),
                margin=rng.random(),
                fallback=rng.random() < 0.1,
                latency_ms=rng.expovariate(0.05),
                inference_ms=rng.random(),
            )
        summaries[StatsKey(f"bot-{index:05d}", f"{index:016x}", "real")] = summary
    return summaries


def flush_cost_us(summaries: dict[StatsKey, Summary], serialize: Serialize, rounds: int) -> float:
    now_ms = time.time_ns() // 1_000_000
    flush = FlushInfo("w-bench", "g-bench", now_ms, 1, now_ms - 2_000, now_ms)

    def flush_all() -> None:
        for key, summary in summaries.items():
            serialize(stats_record(key, summary, flush))

    return best_cpu_seconds(flush_all, rounds) / len(summaries) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/stats_flush.json"))
    args = parser.parse_args()
    summaries = pending(args.keys)
    variants: dict[str, Serialize] = {
        "schema_checked": lambda record: encode(MessageKind.BOT_STATS, record),
        "built": orjson.dumps,
    }
    results = {name: flush_cost_us(summaries, fn, args.rounds) for name, fn in variants.items()}
    for name, us in results.items():
        print(
            f"{name:>15}: {us:6.1f} CPU-us per record ({args.keys} records, best of {args.rounds})"
        )
    ratio = results["schema_checked"] / results["built"]
    print(f"{'ratio':>15}: {ratio:.1f}x")
    write_result(
        args.out,
        "stats_flush",
        {
            "keys": args.keys,
            "rounds": args.rounds,
            "cpu_us_per_record": {name: round(us, 2) for name, us in results.items()},
            "ratio": round(ratio, 2),
        },
    )


if __name__ == "__main__":
    main()
