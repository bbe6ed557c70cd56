"""Stratified k-fold plans, sized to the bot: the held-out data that chooses and scores models.

Every utterance is held out exactly once, so the pooled out-of-fold predictions score the
whole bot. Small bots get more folds (each model sees more of the little data there is);
large bots get fewer, because each fold already holds out thousands of utterances and every
extra fold is another training run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]

# Two folds of a 500-utterance bot hold out 250 utterances each, enough to score it to
# about a point, and every fold saved is a training run a fleet build does not pay for.
SMALL_BOT = 100  # utterances: below this, 4 folds
LARGE_BOT = 500  # at or above this, 2 folds ...
RICH_INTENT = 20  # ... if intents have this many utterances on average


@dataclass(frozen=True)
class Fold:
    train: I64  # row indices the fold's model trains on
    held: I64  # row indices it is scored on


def folds_for(n_texts: int, n_classes: int = 1) -> int:
    """How many folds a bot of ``n_texts`` utterances in ``n_classes`` intents gets.

    Two folds only when each half still holds many utterances per intent: with 7 per
    intent, a half would train on 3 or 4 and score far below the published model.
    """
    if n_texts < SMALL_BOT:
        return 4
    if n_texts >= LARGE_BOT and n_texts >= RICH_INTENT * n_classes:
        return 2
    return 3


def plan_folds(labels: I64, seed: int, k: int | None = None) -> list[Fold]:
    """``k`` stratified folds (default :func:`folds_for`); deterministic for a seed.

    Each intent's utterances are shuffled and dealt round-robin, starting at a rotating
    fold, so an intent with two utterances is held out in two different folds and always
    keeps one for training.
    """
    n = int(labels.size)
    k = k or folds_for(n, int(np.unique(labels).size))
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n, np.int64)
    start = 0
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        fold_of[rows] = (start + np.arange(rows.size)) % k
        start = (start + rows.size) % k
    everything = np.arange(n)
    return [
        Fold(everything[fold_of != f], everything[fold_of == f])
        for f in range(k)
        if np.any(fold_of == f)
    ]
