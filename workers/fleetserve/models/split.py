"""Stratified train/val/test split of one bot's utterances."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

Pair = tuple[str, str]
Split = Sequence[Pair]  # (text, intent)

HOLDOUT_FRACTION = 0.1  # each of val and test


def split_for_build(utterances: Split, seed: int = 0) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """About 80/10/10 per intent; every intent keeps at least one training example.

    Exact duplicate (text, intent) pairs are dropped first, so a duplicate cannot sit in
    train and test at once. An intent with n utterances gives ``round(0.1 n)`` (at least 1)
    to each of val and test once n >= 3; with n == 2 its one held-out utterance goes to val
    or test alternately across intents, so both stay non-empty; n == 1 is train only.
    Deterministic for a seed: intents in sorted order, utterances shuffled per intent.
    """
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in dict.fromkeys(utterances):
        by_intent[intent].append(text)
    rng = np.random.default_rng(seed)
    train: list[Pair] = []
    val: list[Pair] = []
    test: list[Pair] = []
    pairs_seen = 0
    for intent in sorted(by_intent):
        texts = by_intent[intent]
        order = [texts[i] for i in rng.permutation(len(texts))]
        n_val, n_test = _holdout_sizes(len(order), pairs_seen)
        pairs_seen += len(order) == 2
        test += [(t, intent) for t in order[:n_test]]
        val += [(t, intent) for t in order[n_test : n_test + n_val]]
        train += [(t, intent) for t in order[n_test + n_val :]]
    return train, val, test


def _holdout_sizes(n: int, pairs_seen: int) -> tuple[int, int]:
    if n <= 1:
        return 0, 0
    if n == 2:
        return (1, 0) if pairs_seen % 2 == 0 else (0, 1)
    held = max(1, round(HOLDOUT_FRACTION * n))
    return held, held
