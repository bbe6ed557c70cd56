"""Fold plans: stratified, every utterance held out once, sized to the bot."""

from __future__ import annotations

import numpy as np

from fleetserve.models.folds import folds_for, plan_folds
from fleetserve.models.sizing import estimated_distinct


def test_every_utterance_is_held_out_exactly_once_and_never_trains_its_own_fold() -> None:
    labels = np.repeat(np.arange(7), [2, 3, 5, 8, 13, 21, 34]).astype(np.int64)
    folds = plan_folds(labels, seed=0)
    held = np.concatenate([f.held for f in folds])
    assert np.array_equal(np.sort(held), np.arange(labels.size))
    for fold in folds:
        assert not set(fold.held) & set(fold.train)
        assert set(labels[fold.train]) == set(range(7))  # a 2-utterance intent still trains


def test_folds_are_stratified() -> None:
    labels = np.repeat(np.arange(4), 30).astype(np.int64)
    for fold in plan_folds(labels, seed=1, k=3):
        assert np.array_equal(np.bincount(labels[fold.held]), [10, 10, 10, 10])


def test_fold_count_shrinks_as_bots_grow() -> None:
    assert folds_for(50) > folds_for(300) > folds_for(5000) >= 2


def test_same_seed_same_folds() -> None:
    labels = np.repeat(np.arange(5), 9).astype(np.int64)
    a, b = plan_folds(labels, seed=3), plan_folds(labels, seed=3)
    assert all(np.array_equal(x.held, y.held) for x, y in zip(a, b, strict=True))


def test_distinct_features_are_recovered_from_bucket_occupancy() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4096, 1500).astype(np.int64)  # 1,500 features hashed into 4,096
    assert abs(estimated_distinct(ids, 4096) - 1500) < 80
    assert estimated_distinct(np.arange(64, dtype=np.int64), 64) == float("inf")
