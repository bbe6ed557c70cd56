"""PICO-style label-noise detection and correction with the bot's own model family.

1. Split the items several ways (``repeats`` stratified ``folds``-fold splittings).
2. For each split, train a checker on the other folds and let it predict the held-out
   fold: every item gets ``repeats`` out-of-fold probability vectors.
3. Combine them as Bayesian evidence: the geometric mean of the splits' probabilities
   (the checkers share most of their training data, so they count as one witness, not
   ``repeats`` independent ones), tempered, times a noise channel over the observed
   labels (:mod:`fleetserve.clean.channel`) gives each item's posterior over intents.
4. Iterate: retrain the checkers on the corrected labels and recompute the posterior of
   the *observed* labels. Stop when the labels settle, or when the new checkers explain
   the observed labels worse (held-out likelihood) than the previous ones did: then the
   corrections are teaching the checkers their own mistakes, and the previous round is
   kept. ``max_iterations`` bounds it.

Pure apart from training models in memory; deterministic for a seed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fleetserve.clean.channel import (
    Channel,
    Family,
    choose_family,
    fit_channel,
    heldout_log_likelihood,
    posterior,
)
from fleetserve.clean.splits import fold_plans

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
# (train rows, labels of every item, rows to predict, classes, seed) -> probabilities
FitPredict = Callable[[I64, I64, I64, int, int], F32]

_PROB_FLOOR = 1e-7


@dataclass(frozen=True)
class PicoConfig:
    folds: int = 5
    repeats: int = 2
    max_iterations: int = 5
    # A label changes when another intent is more likely than every alternative together.
    threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.folds < 2 or self.repeats < 1 or self.max_iterations < 1:
            raise ValueError("need folds >= 2, repeats >= 1 and max_iterations >= 1")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold must be between 0 and 1")


@dataclass(frozen=True)
class Round:
    iteration: int
    family: Family
    noise_rate: float
    temperature: float
    heldout_log_likelihood: float
    changed_from_observed: int
    changed_from_previous: int


@dataclass(frozen=True)
class PicoResult:
    """Per item: the label it started with, its posterior and the label PICO proposes."""

    initial: I64
    posterior: F64
    proposed: I64
    first_evidence: F32  # the first round's out-of-fold probabilities, mean over splits
    rounds: tuple[Round, ...] = field(default_factory=tuple)
    stop_reason: str = ""

    @property
    def p_initial(self) -> F64:
        result: F64 = self.posterior[np.arange(self.initial.size), self.initial]
        return result

    @property
    def p_proposed(self) -> F64:
        result: F64 = self.posterior[np.arange(self.proposed.size), self.proposed]
        return result

    def suspects(self) -> I64:
        """Items whose own label is less likely than not, most doubtful first."""
        flagged = np.flatnonzero(self.p_initial < 0.5)
        return flagged[np.argsort(self.p_initial[flagged], kind="stable")]


def run_pico(votes: F64, fit_predict: FitPredict, config: PicoConfig | None = None) -> PicoResult:
    """Detect and correct label noise; ``votes`` [m, k] counts each item's observed labels."""
    config = config or PicoConfig()
    n_classes = votes.shape[1]
    initial = votes.argmax(axis=1).astype(np.int64)  # ties: the lower intent id
    labels = initial
    best: tuple[float, F64, I64] | None = None
    rounds: list[Round] = []
    family: Family = "uniform"
    first_evidence: F32 | None = None
    stop = "max_iterations"
    for iteration in range(config.max_iterations):
        oof = out_of_fold(labels, n_classes, fit_predict, config)
        if first_evidence is None:
            first_evidence = oof.mean(axis=0)
        evidence = np.log(np.clip(oof, _PROB_FLOOR, 1.0)).mean(axis=0).astype(np.float64)
        if iteration == 0:
            family, scores = choose_family(evidence, votes, config.seed)
            logger.debug("channel family %s (held-out scores %s)", family, scores)
        score = heldout_log_likelihood(evidence, votes, family, config.seed)
        if best is not None and score < best[0]:
            stop = "explains the observed labels worse"
            break
        channel = fit_channel(evidence, votes, family)
        post = posterior(evidence, votes, channel)
        proposed = _decide(post, initial, config.threshold)
        rounds.append(_round(iteration, channel, score, proposed, initial, labels))
        best = (score, post, proposed)
        if np.array_equal(proposed, labels):
            stop = "settled"
            break
        labels = proposed
    assert best is not None
    assert first_evidence is not None
    return PicoResult(initial, best[1], best[2], first_evidence, tuple(rounds), stop)


def out_of_fold(labels: I64, n_classes: int, fit_predict: FitPredict, config: PicoConfig) -> F32:
    """[repeats, m, k]: each item predicted by checkers that never trained on it."""
    plans = fold_plans(labels, config.folds, config.repeats, config.seed)
    out = np.zeros((len(plans), labels.size, n_classes), np.float32)
    for repeat, folds in enumerate(plans):
        for fold in range(config.folds):
            held = np.flatnonzero(folds == fold)
            trained = np.flatnonzero(folds != fold)
            if held.size == 0 or trained.size == 0:
                continue
            seed = config.seed * 1000 + repeat * 100 + fold
            out[repeat, held] = fit_predict(trained, labels, held, n_classes, seed)
    return out


def _decide(post: F64, initial: I64, threshold: float) -> I64:
    best = post.argmax(axis=1)
    confident = post[np.arange(best.size), best] >= threshold
    result: I64 = np.where(confident, best, initial).astype(np.int64)
    return result


def _round(
    iteration: int, channel: Channel, score: float, proposed: I64, initial: I64, previous: I64
) -> Round:
    return Round(
        iteration=iteration,
        family=channel.family,
        noise_rate=channel.noise_rate,
        temperature=channel.temperature,
        heldout_log_likelihood=score,
        changed_from_observed=int((proposed != initial).sum()),
        changed_from_previous=int((proposed != previous).sum()),
    )
