"""Stratified fold assignments: the several ways PICO splits a bot's data."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


def stratified_folds(labels: I64, n_folds: int, rng: np.random.Generator) -> I64:
    """A fold id per row; each label's rows are dealt round-robin over the folds from a
    random start, so every fold holds about 1/n_folds of every intent."""
    folds = np.empty(labels.size, np.int64)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        rows = rows[rng.permutation(rows.size)]
        folds[rows] = (np.arange(rows.size) + rng.integers(n_folds)) % n_folds
    return folds


def fold_plans(labels: I64, n_folds: int, n_repeats: int, seed: int) -> list[I64]:
    """``n_repeats`` independent stratified splittings, reproducible for a seed."""
    return [
        stratified_folds(labels, n_folds, np.random.default_rng([seed, repeat]))
        for repeat in range(n_repeats)
    ]


def halves(labels: I64, seed: int) -> npt.NDArray[np.bool_]:
    """A stratified half of the rows (True) and the other half (False)."""
    first: npt.NDArray[np.bool_] = (
        stratified_folds(labels, 2, np.random.default_rng([seed, 99])) == 0
    )
    return first
