"""The model family on CLINC150 as one 150-intent bot, and on fleet-like bots.

Run: python bench/components/clinc_bench.py [--data DIR] [--search-budget 0] [--fleet-bots 16]
                                      [--out bench/results/clinc.json]

1. CLINC150: the bot is train.jsonl plus oos_train as out-of-scope examples; the build
   cross-validates on it, refits on all of it and calibrates the threshold on the
   out-of-fold confidences; test and oos_test only score. At the default size cap and at
   512 KB. Published in-scope accuracy: fastText 89.0, SVM 91.0, BERT 96.2 (Larson et al.
   2019).
2. Fleet-like bots drawn (seeded) from CLINC150 train (5-40 random intents, 100 utterances
   each; and whole domains, 15 intents) and paraKQC train (5-40 paraphrase groups, 7 each):
   the full build of each (cross-validate, refit, export, quantize, gate, calibrate) on
   one core.
3. Serving: resident memory per session and per-query latency, with fleetserve's session
   options against onnxruntime's defaults.

numpy's BLAS is pinned to one thread before it loads: a fleet build runs one bot per core.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fleetserve.models.featurize import FeaturizerSpec, featurize_padded
from fleetserve.models.pipeline import BuildOptions, BuiltModel, build_model
from fleetserve.models.runtime import (
    InferenceSession,
    new_session,
    predict,
    read_model_metadata,
    session_options,
)
from fleetserve.models.scoring import score_predictions
from fleetserve.models.search import SearchOptions

Pairs = list[tuple[str, str]]

PUBLISHED = {"fastText": 89.0, "SVM": 91.0, "BERT": 96.2}

# The bundled datasets of the checkout, wherever the command is run from.
REPO_DATA = Path(__file__).resolve().parents[2] / "data"


def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def pairs(rows: Sequence[dict[str, Any]]) -> Pairs:
    return [(row["text"], row["intent"]) for row in rows]


def clinc_single_bot(data: Path, budget_s: float, max_model_kb: float) -> dict[str, Any]:
    clinc = data / "clinc150"
    started = time.perf_counter()
    options = BuildOptions(
        max_model_kb=max_model_kb,
        search=SearchOptions(strategy="tpe" if budget_s > 0 else "none", budget_s=budget_s),
        keep_fp32=True,
    )
    built = build_model(
        pairs(load(clinc / "train.jsonl")),
        out_of_scope=[row["text"] for row in load(clinc / "oos_train.jsonl")],
        options=options,
    )
    seconds = time.perf_counter() - started
    test = load(clinc / "test.jsonl")
    oos = [row["text"] for row in load(clinc / "oos_test.jsonl")]
    scores = {
        q: _score(model, test, oos)
        for q, model in (("published", built.model_bytes), ("fp32", built.fp32_bytes))
        if model is not None
    }
    published = scores["published"]
    fp32 = scores.get("fp32", published)
    metrics = dict(built.metrics)
    return {
        "max_model_kb": max_model_kb,
        "quantization": built.quantization,
        "accuracy_published": published["accuracy"],
        "accuracy_fp32": fp32["accuracy"],
        "quantized_delta_points": published["accuracy"] - fp32["accuracy"],
        "cv_accuracy": metrics["cv_accuracy"],
        "model_kb": len(built.model_bytes) / 1024,
        "fallback_threshold": built.fallback_threshold,
        "oos_recall": published["oos_recall"],
        "in_scope_accuracy_at_threshold": published["accuracy_at_threshold"],
        "search": metrics["search"],
        "total_seconds": seconds,
        "latency_us_batch1": metrics["latency_us_batch1"],
        "latency_us_per_query_batch64": metrics["latency_us_per_query_batch64"],
        "params": {k: v for k, v in built.params.items() if k != "trials"},
        "gate": dict(built.gate),
        "published_baselines": PUBLISHED,
    }


def _score(model: bytes, test: list[dict[str, Any]], oos: list[str]) -> dict[str, Any]:
    session = new_session(model)
    meta = read_model_metadata(model)
    probs = predict(session, meta.featurizer, [row["text"] for row in test])
    oos_probs = predict(session, meta.featurizer, oos)
    truth = [row["intent"] for row in test]
    return score_predictions(meta.labels, probs, truth, oos_probs, meta.fallback_threshold)


def fleet_bots(data: Path, count: int, seed: int) -> list[tuple[str, Pairs]]:
    """(family, utterances) for ``count`` bots of each family."""
    rng = np.random.default_rng(seed)
    clinc = load(data / "clinc150" / "train.jsonl")
    korean = load(data / "parakqc_ko" / "train.jsonl")
    by_intent: dict[str, Pairs] = defaultdict(list)
    by_domain: dict[str, set[str]] = defaultdict(set)
    for row in clinc:
        by_intent[row["intent"]].append((row["text"], row["intent"]))
        by_domain[row["domain"]].add(row["intent"])
    ko_by_intent: dict[str, Pairs] = defaultdict(list)
    for row in korean:
        ko_by_intent[row["intent"]].append((row["text"], row["intent"]))

    def draw(pool: dict[str, Pairs], k: int) -> Pairs:
        chosen = rng.choice(sorted(pool), size=k, replace=False)
        return [pair for intent in chosen for pair in pool[str(intent)]]

    domains = sorted(by_domain)
    bots = [("clinc_random", draw(by_intent, int(rng.integers(5, 41)))) for _ in range(count)]
    bots += [
        ("clinc_domain", [p for i in sorted(by_domain[d]) for p in by_intent[i]])
        for d in domains[: min(count, len(domains))]
    ]
    bots += [("parakqc_random", draw(ko_by_intent, int(rng.integers(5, 41)))) for _ in range(count)]
    return bots


def fleet(data: Path, count: int, seed: int) -> tuple[dict[str, Any], BuiltModel]:
    rows: list[dict[str, Any]] = []
    median_model: BuiltModel | None = None
    bots = fleet_bots(data, count, seed)
    build_model(bots[0][1][:400])  # first-call costs are not per bot
    for family, utterances in bots:
        started = time.perf_counter()
        built = build_model(utterances, options=BuildOptions(seed=seed))
        seconds = time.perf_counter() - started
        rows.append(
            {
                "family": family,
                "intents": len(built.labels),
                "utterances": len(utterances),
                "build_ms": 1000 * seconds,
                "model_kb": len(built.model_bytes) / 1024,
                "quantization": built.quantization,
                "cv_accuracy": built.metrics["cv_accuracy"],
                "quantized_delta_points": built.metrics["quantized_delta_points"],
            }
        )
        if family == "clinc_random" and median_model is None and 15 <= len(built.labels) <= 30:
            median_model = built
    summary = {
        family: _summarize([r for r in rows if r["family"] == family]) for family in _families(rows)
    }
    summary["all"] = _summarize(rows)
    projection = _projection(summary)
    return {"bots": rows, "summary": summary, "projection_10000_bots": projection}, (
        median_model or build_model(fleet_bots(data, 1, seed)[0][1])
    )


def _families(rows: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["family"] for r in rows))


def _summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    times = sorted(r["build_ms"] for r in rows)
    return {
        "bots": len(rows),
        "median_intents": statistics.median(r["intents"] for r in rows),
        "median_build_ms": statistics.median(times),
        "p90_build_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
        "max_build_ms": times[-1],
        "median_model_kb": statistics.median(r["model_kb"] for r in rows),
        "max_model_kb": max(r["model_kb"] for r in rows),
        "mean_cv_accuracy": statistics.fmean(r["cv_accuracy"] for r in rows),
        "int8_published": sum(r["quantization"] == "int8" for r in rows),
    }


def _projection(summary: dict[str, Any]) -> dict[str, Any]:
    """10,000 bots on 2 cores (one build per core), from the mean build time per family."""
    out: dict[str, Any] = {}
    for family in ("clinc_random", "parakqc_random", "all"):
        if family in summary:
            mean_ms = summary[family]["median_build_ms"]
            out[family] = {"minutes": 10_000 * mean_ms / 1000 / 2 / 60, "per_bot_ms": mean_ms}
    return out


def serving(model: BuiltModel, sessions: int) -> dict[str, Any]:
    """Resident bytes per loaded session and query latency, ours vs onnxruntime defaults.

    Each variant runs in a fresh process: in this one, memory freed by the builds above
    would be reused by new sessions and hide their cost.
    """
    results: dict[str, Any] = {"model_kb": len(model.model_bytes) / 1024, "sessions": sessions}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(model.model_bytes)
        for variant in ("fleetserve_options", "onnxruntime_defaults"):
            argv = [sys.executable, __file__, "--measure-sessions", str(path), variant]
            done = subprocess.run(
                [*argv, str(sessions)], capture_output=True, text=True, check=True
            )
            results[variant] = json.loads(done.stdout)
    options = session_options()
    results["options"] = {
        "intra_op_num_threads": options.intra_op_num_threads,
        "enable_cpu_mem_arena": options.enable_cpu_mem_arena,
        "enable_mem_pattern": options.enable_mem_pattern,
    }
    return results


def measure_sessions(path: Path, variant: str, count: int) -> dict[str, float]:
    """In a fresh process: load ``count`` sessions of one model and run each once."""
    import onnxruntime as ort  # type: ignore[import-untyped]  # noqa: PLC0415 - child only

    model_bytes = path.read_bytes()
    spec = read_model_metadata(model_bytes).featurizer
    query = ["can you tell me the balance of my checking account"]

    def make() -> InferenceSession:
        if variant == "fleetserve_options":
            return new_session(model_bytes)
        return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])

    predict(make(), spec, query * 8)  # libraries' one-time allocations are not per session
    before = _rss_bytes()
    started = time.perf_counter()
    loaded = [make() for _ in range(count)]
    load_ms = 1000 * (time.perf_counter() - started) / count
    for session in loaded:  # a first run allocates the per-run buffers a worker keeps
        predict(session, spec, query * 8)
    feeds = _feeds(spec, query)
    return {
        "resident_kb_per_session": (_rss_bytes() - before) / count / 1024,
        "load_ms_per_session": load_ms,
        "query_us_featurize_and_run": _timeit(lambda: predict(loaded[0], spec, query)),
        "query_us_run_only": _timeit(lambda: loaded[0].run(None, feeds)),
    }


def _feeds(spec: FeaturizerSpec, texts: list[str]) -> dict[str, Any]:
    ids, weights = featurize_padded(spec, texts)
    return {"ids": ids, "weights": weights}


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _timeit(fn: Callable[[], object], repeats: int = 300) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return 1e6 * statistics.median(samples)


def report(results: dict[str, Any]) -> None:
    lines = ["CLINC150, one 150-intent bot built on train (+ oos_train); scored on test + oos_test"]
    for c in results["clinc150"]:
        lines.append(
            f"  cap {c['max_model_kb']:.0f} KB: {c['quantization']} {c['model_kb']:.0f} KB, "
            f"test accuracy {c['accuracy_published']:.2f}% (fp32 {c['accuracy_fp32']:.2f}; "
            f"cross-validated {c['cv_accuracy']:.2f}); threshold {c['fallback_threshold']:.3f}: "
            f"oos recall {c['oos_recall']:.1f}%, in-scope correct and answered "
            f"{c['in_scope_accuracy_at_threshold']:.2f}%; build {c['total_seconds']:.0f} s"
        )
    lines.append("Fleet-like bots, full build on one core (no search)")
    for family, f in results["fleet"]["summary"].items():
        lines.append(
            f"  {family:15} {f['bots']:3} bots, median {f['median_intents']:>4} intents: "
            f"build median {f['median_build_ms']:.0f} ms (p90 {f['p90_build_ms']:.0f}, "
            f"max {f['max_build_ms']:.0f}); model median {f['median_model_kb']:.0f} KB "
            f"(max {f['max_model_kb']:.0f}); cv accuracy {f['mean_cv_accuracy']:.1f}%; "
            f"int8 {f['int8_published']}/{f['bots']}"
        )
    for family, p in results["fleet"]["projection_10000_bots"].items():
        lines.append(f"  10,000 bots like the median {family}: {p['minutes']:.1f} min on 2 cores")
    serving_results = results["serving"]
    for name in ("fleetserve_options", "onnxruntime_defaults"):
        r = serving_results[name]
        lines.append(
            f"  serving, {name:20} {r['resident_kb_per_session']:.0f} KB resident per session, "
            f"load {r['load_ms_per_session']:.2f} ms, "
            f"query {r['query_us_featurize_and_run']:.0f} us featurize + run "
            f"({r['query_us_run_only']:.0f} us run) "
            f"({serving_results['model_kb']:.0f} KB model)"
        )
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO_DATA)
    parser.add_argument("--search-budget", type=float, default=0.0)
    parser.add_argument("--fleet-bots", type=int, default=16, help="bots per random family")
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/clinc.json"))
    parser.add_argument("--measure-sessions", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_sessions:
        path, variant, count = args.measure_sessions
        print(json.dumps(measure_sessions(Path(path), variant, int(count))))
        return
    fleet_results, median_model = fleet(args.data, args.fleet_bots, args.seed)
    results = {
        "machine": platform.processor() or platform.machine(),
        "blas_threads": os.environ["OPENBLAS_NUM_THREADS"],
        "clinc150": [clinc_single_bot(args.data, args.search_budget, kb) for kb in (150.0, 512.0)],
        "fleet": fleet_results,
        "serving": serving(median_model, args.sessions),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    report(results)


if __name__ == "__main__":
    main()
