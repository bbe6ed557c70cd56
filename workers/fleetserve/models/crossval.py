"""Score one configuration by k-fold cross-validation on the bot's own utterances.

The pooled out-of-fold accuracy is what a user would measure on utterances the model never
saw, so it is the number the build table reports. The out-of-fold confidences also
calibrate the fallback threshold, and the fold models' mean confidence on the bot's
out-of-scope examples stands in for the published model's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetserve.models.config import ModelConfig
from fleetserve.models.data import BotData
from fleetserve.models.distill import Distillation, fit
from fleetserve.models.featurize import select
from fleetserve.models.folds import Fold
from fleetserve.models.train import ModelWeights, forward

F32 = npt.NDArray[np.float32]

# Called after each fold with (fold number, running accuracy); True stops early (pruning).
FoldReport = Callable[[int, float], bool]


@dataclass(frozen=True)
class CvResult:
    accuracy: float  # percent, pooled over every held-out utterance
    fold_accuracies: tuple[float, ...]
    oof_probs: F32  # [texts, classes]: each row from the one model that did not train on it
    oos_probs: F32  # [oos texts, classes]: mean of the fold models
    seconds: float
    sample_weights: ModelWeights  # the first fold's model, for latency measurements
    complete: bool = True  # False when a report stopped it early


def cross_validate(
    data: BotData,
    config: ModelConfig,
    folds: Sequence[Fold],
    seed: int,
    *,
    distillation: Distillation | None = None,
    report: FoldReport | None = None,
) -> CvResult:
    started = time.perf_counter()
    spec = config.featurizer
    features = data.features(spec)
    oos = data.oos_features(spec)
    oof = np.zeros((len(data.texts), data.n_classes), np.float32)
    oos_probs = np.zeros((len(data.out_of_scope), data.n_classes), np.float32)
    accuracies: list[float] = []
    sample: ModelWeights | None = None
    complete = True
    for number, fold in enumerate(folds):
        weights = fit(data, fold.train, config, seed + number, distillation)
        sample = sample or weights
        oof[fold.held] = forward(weights, select(features, fold.held))
        if oos.n_texts:
            oos_probs += forward(weights, oos) / len(folds)
        accuracies.append(_percent(oof[fold.held], data.labels[fold.held]))
        if report is not None and number + 1 < len(folds):
            seen = np.concatenate([f.held for f in folds[: number + 1]])
            if report(number, _percent(oof[seen], data.labels[seen])):
                complete = False
                break
    assert sample is not None
    held = np.concatenate([f.held for f in folds[: len(accuracies)]])
    return CvResult(
        accuracy=_percent(oof[held], data.labels[held]),
        fold_accuracies=tuple(accuracies),
        oof_probs=oof,
        oos_probs=oos_probs,
        seconds=time.perf_counter() - started,
        sample_weights=sample,
        complete=complete,
    )


def _percent(probs: F32, labels: npt.NDArray[np.int64]) -> float:
    return 100.0 * float((probs.argmax(axis=1) == labels).mean()) if labels.size else 0.0
