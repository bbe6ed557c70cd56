"""Label-noise detection and correction (`fleetserve clean`'s PICO) against confident learning.

Run: python bench/components/noise_bench.py [--data DIR] [--dataset DIR ...] [--seed 7]
                                      [--out bench/results/noise.json]

For each dataset, labels of the training rows are flipped, seeded, at 0 %, 5 %, 10 % and
20 %, in two ways: ``uniform`` (any other intent) and ``confusable`` (one of the three
intents whose character n-gram centroid is nearest the true one, weighted by that
similarity). Then, on the same out-of-fold probabilities (PICO's first round: the model
family, 5 folds x 2 splittings, geometric mean):

- ``pico``: the whole procedure (it retrains on its own corrections while that helps);
- ``cleanlab``: ``cleanlab.filter.find_label_issues(labels, pred_probs)``, defaults;
- ``baseline``: every row whose out-of-fold arg-max is not its label.

Reported per setting: precision, recall and F1 of the flagged rows against the flipped
ones; PICO's corrections (flipped rows given back their true label, clean rows changed);
and test accuracy of the model family trained on the noisy labels, on PICO's cleaned
labels, on the noisy labels minus cleanlab's flagged rows, and on the clean labels.

Datasets are a folder with ``train.jsonl`` and ``test.jsonl`` ({"text", "intent"} lines).
Built in: CLINC150 (all 150 intents, 40 training rows each, seeded), one CLINC150 domain
(banking, 15 intents x 100), paraKQC (100 paraphrase groups drawn seeded, 7 rows each) and
SNIPS (7 intents, 300 rows each). ``--dataset DIR`` adds any other (at most 300 rows per
intent are drawn).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from fleetserve.bots.text import match_key
from fleetserve.clean.family import FamilyChecker
from fleetserve.clean.pico import PicoConfig, run_pico

I64 = npt.NDArray[np.int64]
RATES = (0.0, 0.05, 0.10, 0.20)
KINDS = ("uniform", "confusable")
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "data"  # the checkout's bundled data


@dataclass(frozen=True)
class Dataset:
    name: str
    note: str
    train_texts: list[str]
    train_labels: I64
    test_texts: list[str]
    test_labels: I64
    intents: list[str]


def read_jsonl(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            record = orjson.loads(line)
            rows.append((str(record["text"]), str(record["intent"])))
    return rows


def make_dataset(
    name: str,
    folder: Path,
    *,
    seed: int,
    intents: list[str] | None = None,
    n_intents: int | None = None,
    per_intent: int | None = None,
) -> Dataset:
    """Deduplicated (one label per text), optionally subsampled, seeded."""
    rng = np.random.default_rng(seed)
    train = _dedupe(read_jsonl(folder / "train.jsonl"))
    test = read_jsonl(folder / "test.jsonl")
    labels = sorted({intent for _, intent in train})
    if intents is not None:
        labels = [label for label in labels if label in set(intents)]
    elif n_intents is not None and n_intents < len(labels):
        labels = sorted(rng.choice(labels, n_intents, replace=False).tolist())
    index = {label: i for i, label in enumerate(labels)}
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in train:
        if intent in index:
            by_intent[intent].append(text)
    texts: list[str] = []
    y: list[int] = []
    for label in labels:
        chosen = by_intent[label]
        if per_intent is not None and len(chosen) > per_intent:
            chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), per_intent, replace=False))]
        texts += chosen
        y += [index[label]] * len(chosen)
    kept_test = [(t, index[i]) for t, i in test if i in index]
    note = f"{len(texts)} training rows, {len(labels)} intents, {len(kept_test)} test rows"
    return Dataset(
        name,
        note,
        texts,
        np.array(y, np.int64),
        [t for t, _ in kept_test],
        np.array([i for _, i in kept_test], np.int64),
        labels,
    )


def _dedupe(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    labels: dict[str, set[str]] = defaultdict(set)
    for text, intent in rows:
        labels[match_key(text)].add(intent)
    seen: set[str] = set()
    kept = []
    for text, intent in rows:
        key = match_key(text)
        if len(labels[key]) == 1 and key not in seen:
            seen.add(key)
            kept.append((text, intent))
    return kept


def nearest_intents(texts: list[str], labels: I64, k: int, top: int = 3) -> tuple[I64, Any]:
    """For each intent, the ``top`` others whose char n-gram TF-IDF centroid is nearest."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415
    from sklearn.preprocessing import normalize  # noqa: PLC0415

    matrix = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    x = matrix.fit_transform(texts)
    centroids = normalize(np.vstack([np.asarray(x[labels == c].mean(axis=0)) for c in range(k)]))
    similarity = centroids @ centroids.T
    np.fill_diagonal(similarity, -np.inf)
    order = np.argsort(-similarity, axis=1)[:, :top]
    return order, np.take_along_axis(similarity, order, axis=1)


def inject(data: Dataset, rate: float, kind: str, seed: int) -> tuple[I64, I64]:
    """(noisy labels, flipped rows)."""
    rng = np.random.default_rng(seed)
    y = data.train_labels
    k = len(data.intents)
    flipped = np.sort(rng.choice(y.size, round(rate * y.size), replace=False))
    noisy = y.copy()
    if kind == "uniform":
        noisy[flipped] = (y[flipped] + rng.integers(1, k, flipped.size)) % k
        return noisy, flipped
    targets, similarity = nearest_intents(data.train_texts, y, k)
    for row in flipped:
        weights = np.maximum(similarity[y[row]], 1e-6)
        noisy[row] = targets[y[row]][rng.choice(weights.size, p=weights / weights.sum())]
    return noisy, flipped


def flag_scores(flagged: I64, flipped: I64) -> dict[str, float]:
    hits = np.intersect1d(flagged, flipped).size
    precision = hits / flagged.size if flagged.size else 0.0
    recall = hits / flipped.size if flipped.size else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"flagged": int(flagged.size), "precision": precision, "recall": recall, "f1": f1}


def test_accuracy(checker: FamilyChecker, data: Dataset, labels: I64, rows: I64) -> float:
    test = FamilyChecker(data.test_texts)
    weights = checker.fit(rows, labels, len(data.intents), seed=0)
    from fleetserve.models.train import forward  # noqa: PLC0415

    probs = forward(weights, test.features)
    return 100.0 * float((probs.argmax(axis=1) == data.test_labels).mean())


def run_setting(data: Dataset, rate: float, kind: str, seed: int) -> dict[str, Any]:
    from cleanlab.filter import find_label_issues  # noqa: PLC0415

    started = time.perf_counter()
    noisy, flipped = inject(data, rate, kind, seed)
    k = len(data.intents)
    checker = FamilyChecker(data.train_texts)
    votes = np.zeros((noisy.size, k))
    votes[np.arange(noisy.size), noisy] = 1.0
    result = run_pico(votes, checker.fit_predict, PicoConfig(seed=seed))
    pico_seconds = time.perf_counter() - started
    probs = result.first_evidence / result.first_evidence.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cleanlab_flags = np.flatnonzero(find_label_issues(noisy, probs))
    baseline_flags = np.flatnonzero(probs.argmax(axis=1) != noisy)
    clean_rows = np.setdiff1d(np.arange(noisy.size), flipped)
    y = data.train_labels
    everything = np.arange(noisy.size)
    return {
        "dataset": data.name,
        "kind": kind,
        "rate": rate,
        "flipped": int(flipped.size),
        "pico": {
            **flag_scores(result.suspects(), flipped),
            "corrected": float((result.proposed[flipped] == y[flipped]).mean())
            if flipped.size
            else None,
            "clean_rows_changed": float((result.proposed[clean_rows] != y[clean_rows]).mean()),
            "rounds": [vars(r) for r in result.rounds],
            "stop_reason": result.stop_reason,
            "seconds": round(pico_seconds, 2),
        },
        "cleanlab": flag_scores(cleanlab_flags, flipped),
        "baseline": flag_scores(baseline_flags, flipped),
        "test_accuracy": {
            "noisy": test_accuracy(checker, data, noisy, everything),
            "pico_cleaned": test_accuracy(checker, data, result.proposed, everything),
            "cleanlab_pruned": test_accuracy(
                checker, data, noisy, np.setdiff1d(everything, cleanlab_flags)
            ),
            "clean": test_accuracy(checker, data, y, everything),
        },
    }


def datasets(data_dir: Path, extra: list[Path], seed: int) -> list[Dataset]:
    clinc = data_dir / "clinc150"
    banking = [
        json.loads(line)["intent"]
        for line in (clinc / "train.jsonl").read_text().splitlines()
        if '"domain": "banking"' in line
    ]
    found = [
        make_dataset("clinc150", clinc, seed=seed, per_intent=40),
        make_dataset("clinc150-banking", clinc, seed=seed, intents=sorted(set(banking))),
        make_dataset("parakqc_ko-100", data_dir / "parakqc_ko", seed=seed, n_intents=100),
        make_dataset("snips", data_dir / "snips", seed=seed, per_intent=300),
    ]
    found += [make_dataset(path.name, path, seed=seed, per_intent=300) for path in extra]
    return found


def summary_line(row: dict[str, Any]) -> str:
    pico, cleanlab, base = row["pico"], row["cleanlab"], row["baseline"]
    acc = row["test_accuracy"]
    corrected = "-" if pico["corrected"] is None else f"{100 * pico['corrected']:.1f}"
    return (
        f"{row['dataset']:<18} {row['kind']:<10} {100 * row['rate']:>4.0f}%  "
        f"F1 pico {pico['f1']:.3f} cleanlab {cleanlab['f1']:.3f} base {base['f1']:.3f}  "
        f"corrected {corrected}% clean changed {100 * pico['clean_rows_changed']:.2f}%  "
        f"acc noisy {acc['noisy']:.1f} pico {acc['pico_cleaned']:.1f} "
        f"cl {acc['cleanlab_pruned']:.1f} clean {acc['clean']:.1f}  "
        f"({len(pico['rounds'])} rounds, {pico['seconds']} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dataset", type=Path, action="append", default=[])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("bench/results/noise.json"))
    parser.add_argument(
        "--note", default="", help="Stored with the results, e.g. how busy the machine was."
    )
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    found = datasets(args.data, args.dataset, args.seed)
    for data in found:
        for kind in KINDS:
            for rate in RATES:
                if rate == 0.0 and kind != KINDS[0]:
                    continue  # no flips: both kinds are the same setting
                row = run_setting(data, rate, kind, args.seed)
                rows.append(row)
                print(summary_line(row), flush=True)
    document = {
        "benchmark": "noise",
        "seed": args.seed,
        "datasets": {d.name: d.note for d in found},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "note": args.note,
        "load_average_at_end": os.getloadavg(),
        "seconds": round(time.perf_counter() - started, 1),
        "settings": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(
        orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    print(f"wrote {args.out} in {document['seconds']} s")


if __name__ == "__main__":
    main()
