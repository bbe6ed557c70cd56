"""What an onnxruntime session costs per resident bot: the shipped graph with the optimizer
off (what the worker does for a builder-optimized snapshot) against the optimizer at load.

Run: python bench/components/session_memory_bench.py [--bots 1000] [--rows 3] [--probe]
         [--out bench/results/session_memory.json]

Each variant runs in its own fresh process on the same snapshots of the bench fleet (seed 7,
built and cached on first use). It builds one session per bot, keeps them all alive and
reports the RSS growth per session, the session build time (p50/p99, wall, one warm-up
query included, as a cache miss pays) and the CPU time per call at ``--rows`` queries.
"Optimizer at load" builds the same optimized file with ``ORT_ENABLE_ALL``: the
transformers onnxruntime keeps for a session's life are what it measures, not a
different graph. Before recipe 5 the worker also ran those fusions at load.

``--probe`` also times glibc's heap probe (``mallinfo2``, what the cache's footprint meter
calls twice per measured load) and ``malloc_trim(0)`` (the reaper's), with every session
resident and again after every other one was freed: both walk the free chunks, so their
cost follows fragmentation (``cache/footprint.py``, ``cache/reaper.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]

from fleetserve.cache.heap import glibc_heap_probe, glibc_trim
from fleetserve.models.featurize import featurize_padded
from fleetserve.models.metadata import is_optimized, read_model_metadata
from fleetserve.models.runtime import predict_padded, session_options
from fleetserve.store.local import LocalDirectoryStore
from fleetserve_bench.machine import write_result
from fleetserve_bench.world import ensure_fleet, fleet_store_dir

LEVELS = {
    "optimizer off (shipped)": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "optimizer at load": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def snapshot_bytes(bots: int) -> list[bytes]:
    store_dir = fleet_store_dir(bots, 7)
    fleet = ensure_fleet(bots, 7, store_dir)
    store = LocalDirectoryStore(store_dir)
    return [store.read_model(b.bot_id, store.versions(b.bot_id)[-1]) for b in fleet]


def timed_ms(call: Any, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return round((time.perf_counter() - started) / repeats * 1e3, 3)


def heap_calls(sessions: list[Any]) -> dict[str, float]:
    """mallinfo2 and malloc_trim in ms, all sessions resident, then with half of them freed."""
    probe, trim = glibc_heap_probe(), glibc_trim()
    if probe is None or trim is None:
        return {}
    resident = {"mallinfo2_ms": timed_ms(probe, 20), "malloc_trim_ms": timed_ms(trim, 3)}
    del sessions[::2]
    freed = {"mallinfo2_ms": timed_ms(probe, 5), "malloc_trim_ms": timed_ms(trim, 3)}
    return {
        **{f"all_resident_{k}": v for k, v in resident.items()},
        **{f"half_freed_{k}": v for k, v in freed.items()},
    }


def measure(variant: str, bots: int, rows: int, probe: bool) -> dict[str, Any]:
    """One variant in this process: sessions for every snapshot, all kept alive."""
    models = snapshot_bytes(bots)
    level = LEVELS[variant]
    warm = [featurize_padded(read_model_metadata(m).featurizer, ["hello"]) for m in models]
    sessions, build_ms = [], []
    baseline = rss_bytes()
    for data, (ids, weights) in zip(models, warm, strict=True):
        started = time.perf_counter()
        session = ort.InferenceSession(
            data, sess_options=session_options(level), providers=["CPUExecutionProvider"]
        )
        session._model_bytes = None  # as the loader does (cache/loader.py:drop_model_bytes)
        predict_padded(session, ids, weights)
        build_ms.append((time.perf_counter() - started) * 1e3)
        sessions.append(session)
    growth = (rss_bytes() - baseline) / len(sessions)
    queries = [
        featurize_padded(read_model_metadata(m).featurizer, ["book a table"] * rows) for m in models
    ]
    started = time.process_time()
    for _ in range(5):
        for session, (ids, weights) in zip(sessions, queries, strict=True):
            predict_padded(session, ids, weights)
    call_us = (time.process_time() - started) / (5 * len(sessions)) * 1e6
    return {
        "variant": variant,
        "sessions": len(sessions),
        "optimized_files": sum(map(is_optimized, models)),
        "file_bytes_mean": round(float(np.mean([len(m) for m in models]))),
        "rss_per_session_bytes": round(growth),
        "build_ms": {
            "p50": round(float(np.percentile(build_ms, 50)), 3),
            "p99": round(float(np.percentile(build_ms, 99)), 3),
        },
        "cpu_us_per_call": round(call_us, 2),
        "rows_per_call": rows,
        **({"heap_calls": heap_calls(sessions)} if probe else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/session_memory.json"))
    parser.add_argument("--probe", action="store_true", help="time mallinfo2 and malloc_trim")
    parser.add_argument("--variant", choices=sorted(LEVELS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.variant:
        print(json.dumps(measure(args.variant, args.bots, args.rows, args.probe)))
        return
    snapshot_bytes(args.bots)  # build the fleet once, outside the measured processes
    results = []
    for variant in LEVELS:
        command = [sys.executable, __file__, "--variant", variant, "--bots", str(args.bots)]
        command += ["--rows", str(args.rows), *(["--probe"] if args.probe else [])]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(results[-1])
    write_result(args.out, "session_memory", {"bots": args.bots, "variants": results})


if __name__ == "__main__":
    main()
