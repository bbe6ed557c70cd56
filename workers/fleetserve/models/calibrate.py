"""The fallback threshold: below this top probability a bot answers "I did not understand".

With out-of-scope examples the threshold maximizes in-scope accuracy (correct *and*
accepted) plus out-of-scope recall (rejected), the two numbers the CLINC150 paper reports.
Without them, it is a low quantile of the in-scope validation confidences: about that
fraction of in-scope queries falls back, mostly the ones the model gets wrong (measured on
CLINC-derived bots, a quantile of the *correct* predictions' confidences instead made ~11%
of in-scope test queries fall back at q = 0.05).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fleetserve.errors import ConfigError

F32 = npt.NDArray[np.float32]
Bools = npt.NDArray[np.bool_]
Source = Literal["in_scope_and_oos", "in_scope_quantile", "target_oos_recall", "none"]

DEFAULT_QUANTILE = 0.05


@dataclass(frozen=True)
class CalibrationOptions:
    """How the threshold is chosen; at most one of the two may be set.

    ``quantile``: about this share of in-scope queries falls back. ``target_oos_recall``
    (percent): the lowest threshold that rejects at least that share of the bot's
    out-of-scope examples. Neither: the best split when the bot has out-of-scope examples,
    else the default quantile.
    """

    quantile: float | None = None
    target_oos_recall: float | None = None

    def __post_init__(self) -> None:
        if self.quantile is not None and self.target_oos_recall is not None:
            raise ConfigError("choose a fallback quantile or a target oos recall, not both")
        if self.quantile is not None and not 0 <= self.quantile < 1:
            raise ConfigError(f"fallback quantile must be in [0, 1), got {self.quantile}")
        if self.target_oos_recall is not None and not 0 < self.target_oos_recall <= 100:
            raise ConfigError(
                f"target oos recall must be in (0, 100] percent, got {self.target_oos_recall}"
            )


@dataclass(frozen=True)
class Calibration:
    threshold: float
    source: Source
    objective: float | None  # in-scope accuracy + oos recall (0..2) when oos examples exist


def calibrate_threshold(
    in_confidence: F32,
    in_correct: Bools,
    oos_confidence: F32,
    *,
    options: CalibrationOptions | None = None,
) -> Calibration:
    """A query falls back when its top probability is below the returned threshold."""
    options = options or CalibrationOptions()
    if options.target_oos_recall is not None and oos_confidence.size:
        return _for_oos_recall(oos_confidence, options.target_oos_recall)
    quantile = DEFAULT_QUANTILE if options.quantile is None else options.quantile
    if options.quantile is None and in_confidence.size and oos_confidence.size:
        return _best_split(in_confidence, in_correct, oos_confidence)
    if in_confidence.size:
        return Calibration(float(np.quantile(in_confidence, quantile)), "in_scope_quantile", None)
    return Calibration(0.0, "none", None)


def _for_oos_recall(oos_confidence: F32, target_percent: float) -> Calibration:
    ranked = np.sort(oos_confidence)
    needed = int(np.ceil(target_percent / 100.0 * ranked.size))
    # Just above the needed-th lowest confidence: that many examples fall below it.
    threshold = float(np.nextafter(ranked[needed - 1], np.float32(np.inf)))
    return Calibration(min(threshold, 1.0), "target_oos_recall", None)


def _best_split(in_confidence: F32, in_correct: Bools, oos_confidence: F32) -> Calibration:
    # Every decision boundary sits at an observed confidence; between two of them the
    # objective is constant, so score each and settle midway below the best one.
    candidates = np.unique(np.concatenate([in_confidence, oos_confidence, [0.0]]))
    correct_sorted = np.sort(in_confidence[in_correct])
    oos_sorted = np.sort(oos_confidence)
    accepted_correct = correct_sorted.size - np.searchsorted(correct_sorted, candidates, "left")
    rejected_oos = np.searchsorted(oos_sorted, candidates, "left")
    objective = accepted_correct / in_confidence.size + rejected_oos / oos_confidence.size
    best = int(np.argmax(objective))  # the lowest threshold among equals: fewest fallbacks
    below = float(candidates[best - 1]) if best > 0 else 0.0
    threshold = (below + float(candidates[best])) / 2.0
    return Calibration(threshold, "in_scope_and_oos", float(objective[best]))


def fallback_metrics(
    in_confidence: F32, in_correct: Bools, oos_confidence: F32, threshold: float
) -> dict[str, Any]:
    """Fallback precision/recall (fallback = positive) and in-scope accuracy at ``threshold``."""
    in_fallback = in_confidence < threshold
    oos_fallback = oos_confidence < threshold
    fallbacks = int(in_fallback.sum() + oos_fallback.sum())
    in_scope_accuracy = (
        100.0 * float((in_correct & ~in_fallback).mean()) if in_confidence.size else None
    )
    has_oos = oos_confidence.size > 0
    return {
        "fallback_precision": (
            100.0 * float(oos_fallback.sum()) / fallbacks if has_oos and fallbacks else None
        ),
        "fallback_recall": 100.0 * float(oos_fallback.mean()) if has_oos else None,
        "in_scope_accuracy_at_threshold": in_scope_accuracy,
        "in_scope_fallback_rate": (
            100.0 * float(in_fallback.mean()) if in_confidence.size else None
        ),
    }
