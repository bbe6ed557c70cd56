"""Coordinate search over a small grid, scored on validation accuracy, within a time budget.

From the base configuration, each coordinate in turn tries its neighbouring grid values
(one step down and up); a strictly better validation accuracy moves the search there. Passes
repeat until one changes nothing or the budget is spent. A candidate whose predicted time
(the base trial's time scaled by its training flops) would overrun the budget, or whose
int8 table exceeds ``max_model_kb``, is skipped. Same inputs and a budget that is not hit
give the same result; a budget that is hit makes the result depend on machine speed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetserve.models.config import ModelConfig
from fleetserve.models.evaluate import accuracy
from fleetserve.models.featurize import Features, FeaturizerSpec, featurize
from fleetserve.models.train import ModelWeights, forward, train

logger = logging.getLogger(__name__)

I64 = npt.NDArray[np.int64]

# Ordered by how much they moved validation accuracy in bench/components/clinc_bench.py runs.
GRID: dict[str, list[Any]] = {
    "char_ngrams": [(1, 3), (2, 4), (3, 5), (2, 5)],
    "dim": [16, 24, 32, 48, 64, 96],
    "buckets": [2048, 4096, 8192, 12288, 16384, 32768],
    "epochs": [3, 5, 8, 12, 20],
    "dropout": [0.0, 0.2, 0.4],
    "lr": [0.01, 0.02, 0.04],
    "batch_size": [32, 64, 128],
    "label_smoothing": [0.0, 0.1],
    "word_ngram_max": [1, 2],
    "pooling": ["mean", "sqrt"],
}


@dataclass(frozen=True)
class Data:
    texts: Sequence[str]
    labels: I64


@dataclass(frozen=True)
class Trial:
    config: ModelConfig
    weights: ModelWeights
    val_accuracy: float
    seconds: float

    def record(self) -> dict[str, Any]:
        return {
            "params": self.config.to_params(),
            "val_accuracy": self.val_accuracy,
            "seconds": self.seconds,
        }


@dataclass
class _Search:
    train: Data
    val: Data
    n_classes: int
    seed: int
    budget_s: float
    started: float = field(default_factory=time.perf_counter)
    records: list[dict[str, Any]] = field(
        default_factory=list
    )  # weights are kept for the best only
    seen: set[ModelConfig] = field(default_factory=set)
    _features: dict[tuple[FeaturizerSpec, str], Features] = field(default_factory=dict)

    def run_trial(self, config: ModelConfig) -> Trial:
        started = time.perf_counter()
        weights = train(
            self.features(config.featurizer, "train"),
            self.train.labels,
            self.n_classes,
            config.featurizer.buckets,
            config.training,
            self.seed,
        )
        score = accuracy(forward(weights, self.features(config.featurizer, "val")), self.val.labels)
        trial = Trial(config, weights, score, time.perf_counter() - started)
        self.records.append(trial.record())
        self.seen.add(config)
        logger.debug("trial %s: val %.2f in %.2fs", config.to_params(), score, trial.seconds)
        return trial

    def features(self, spec: FeaturizerSpec, split: str) -> Features:
        key = (spec, split)
        if key not in self._features:
            data = self.train if split == "train" else self.val
            self._features[key] = featurize(spec, data.texts)
        return self._features[key]

    def affordable(self, config: ModelConfig, base: Trial) -> bool:
        predicted = base.seconds * _flops(config, self.train) / _flops(base.config, self.train)
        return time.perf_counter() - self.started + predicted <= self.budget_s


def train_once(
    train_data: Data, val: Data, n_classes: int, config: ModelConfig, seed: int
) -> Trial:
    """The base configuration alone: what a zero search budget gets (``val`` may be empty)."""
    search = _Search(train_data, val, n_classes, seed, budget_s=0.0)
    return search.run_trial(config.resolved(len(train_data.texts)))


def coordinate_search(
    train_data: Data,
    val: Data,
    n_classes: int,
    base: ModelConfig,
    *,
    budget_s: float,
    seed: int,
) -> tuple[Trial, list[dict[str, Any]]]:
    """The best trial (weights included, so the winner is not trained twice) and a record of
    every trial (params, validation accuracy, seconds)."""
    search = _Search(train_data, val, n_classes, seed, budget_s)
    # Explicit epochs and batch size, so the grid can step from them and the record shows them.
    best = search.run_trial(base.resolved(len(train_data.texts)))
    base_trial = best
    moved = True
    while moved:
        moved = False
        for coordinate in GRID:
            for candidate in _neighbours(best.config, coordinate):
                if candidate in search.seen or not candidate.fits(n_classes):
                    continue
                if not search.affordable(candidate, base_trial):
                    continue
                trial = search.run_trial(candidate)
                if trial.val_accuracy > best.val_accuracy:
                    best, moved = trial, True
    logger.info(
        "search: %d trials in %.1fs, best val %.2f with %s",
        len(search.records),
        time.perf_counter() - search.started,
        best.val_accuracy,
        best.config.to_params(),
    )
    return best, search.records


def _neighbours(config: ModelConfig, coordinate: str) -> list[ModelConfig]:
    current = _get(config, coordinate)
    values = GRID[coordinate]
    if current in values:
        index = values.index(current)
        picks = [values[i] for i in (index - 1, index + 1) if 0 <= i < len(values)]
    else:  # off-grid base value: the nearest grid values on each side
        picks = _around(values, current)
    return [_set(config, coordinate, value) for value in picks]


def _around(values: list[Any], current: Any) -> list[Any]:
    if not isinstance(current, int | float) or isinstance(current, bool):
        return [v for v in values if v != current][:2]
    below = [v for v in values if v < current]
    above = [v for v in values if v > current]
    return ([below[-1]] if below else []) + ([above[0]] if above else [])


def _get(config: ModelConfig, coordinate: str) -> Any:
    if coordinate == "char_ngrams":
        return (config.featurizer.char_ngram_min, config.featurizer.char_ngram_max)
    return config.to_params()[coordinate]


def _set(config: ModelConfig, coordinate: str, value: Any) -> ModelConfig:
    if coordinate == "char_ngrams":
        return config.with_params({"char_ngram_min": value[0], "char_ngram_max": value[1]})
    return config.with_params({coordinate: value})


def _flops(config: ModelConfig, data: Data) -> float:
    epochs, _ = config.training.schedule(len(data.texts))
    return float(epochs * config.featurizer.buckets * config.training.dim)
