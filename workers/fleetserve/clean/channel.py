"""The noise channel: how observed labels arise from true ones, fitted by EM.

Notation: ``evidence`` [m, k] is the checkers' log-probability of each true intent for
each item; ``votes`` [m, k] counts the labels each item was observed with (one vote per
row; a text that appears twice with two labels has two votes). The channel ``matrix``
[k, k] is P(observed = y | true = c). The checkers' probabilities are tempered,
``q = softmax(evidence / temperature)``, and

    P(true = c | x, votes) ∝ q(c | x) * prod_y matrix[c, y] ** votes[y]

Temperature and channel maximize the marginal likelihood of the observed votes. Three
channel families, from fewest parameters to most:

- ``uniform``: a label is wrong with probability ``noise_rate``, then any other intent;
- ``similar``: a wrong label goes to intents the checkers themselves confuse with the
  true one (the off-diagonal of the soft confusion matrix);
- ``free``: a full [k, k] matrix with a Dirichlet prior of one average intent's worth of
  pseudo-votes towards the uniform channel.

Which family a bot gets is decided by held-out likelihood (:func:`choose_family`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from fleetserve.clean.splits import halves

F64 = npt.NDArray[np.float64]
Family = Literal["uniform", "similar", "free"]
FAMILIES: Final[tuple[Family, ...]] = ("uniform", "similar", "free")

_LOG_TAU_RANGE: Final = (math.log(0.02), math.log(50.0))
_NOISE_RANGE: Final = (1e-6, 0.9)
_MAX_ROUNDS: Final = 30
_TOLERANCE: Final = 1e-5
_GOLDEN_STEPS: Final = 14  # log-temperature to within ~0.01 of its optimum


@dataclass(frozen=True)
class Channel:
    family: Family
    matrix: F64
    noise_rate: float
    temperature: float


def softmax(logits: F64) -> F64:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: F64 = exp / exp.sum(axis=1, keepdims=True)
    return result


def posterior(evidence: F64, votes: F64, channel: Channel) -> F64:
    """P(true intent | text, observed labels) per item."""
    log_joint = evidence / channel.temperature + votes @ np.log(channel.matrix).T
    return softmax(log_joint)


def mean_log_likelihood(evidence: F64, votes: F64, channel: Channel) -> float:
    """Mean log P(observed votes | text) per vote under the channel."""
    return _mean_ll(evidence, votes, channel.matrix, channel.temperature)


def fit_channel(evidence: F64, votes: F64, family: Family) -> Channel:
    """EM over temperature, noise rate and (per family) the channel's shape."""
    k = votes.shape[1]
    observed = votes.argmax(axis=1)
    disagreement = float((evidence.argmax(axis=1) != observed).mean())
    noise = float(np.clip(disagreement, 1e-3, 0.5))
    matrix = _uniform(k, noise)
    temperature = 1.0
    previous = -math.inf
    for _ in range(_MAX_ROUNDS):
        temperature = _best_temperature(evidence, votes, matrix)
        current = _mean_ll(evidence, votes, matrix, temperature)
        q = softmax(evidence / temperature)
        post = softmax(evidence / temperature + votes @ np.log(matrix).T)
        noise = float(np.clip(1.0 - (post * votes).sum() / votes.sum(), *_NOISE_RANGE))
        matrix = _reestimate(family, k, noise, post, q, votes)
        if current - previous < _TOLERANCE:
            break
        previous = current
    return Channel(family, matrix, noise, temperature)


def heldout_log_likelihood(evidence: F64, votes: F64, family: Family, seed: int) -> float:
    """Fit on one stratified half, score the other, and the other way round."""
    first = halves(votes.argmax(axis=1).astype(np.int64), seed)
    total = 0.0
    for fit_rows in (first, ~first):
        channel = fit_channel(evidence[fit_rows], votes[fit_rows], family)
        score_rows = ~fit_rows
        total += mean_log_likelihood(evidence[score_rows], votes[score_rows], channel) * float(
            votes[score_rows].sum()
        )
    return total / float(votes.sum())


def choose_family(evidence: F64, votes: F64, seed: int) -> tuple[Family, dict[Family, float]]:
    """The family whose channel best predicts held-out labels; ties go to the simpler."""
    scores: dict[Family, float] = {
        family: heldout_log_likelihood(evidence, votes, family, seed) for family in FAMILIES
    }
    best = max(FAMILIES, key=lambda family: (scores[family], -FAMILIES.index(family)))
    return best, scores


def _mean_ll(evidence: F64, votes: F64, matrix: F64, temperature: float) -> float:
    return _mean_ll_given(evidence, votes, votes @ np.log(matrix).T, temperature)


def _mean_ll_given(evidence: F64, votes: F64, channel_term: F64, temperature: float) -> float:
    log_q = evidence / temperature
    log_q -= _logsumexp(log_q)
    log_q += channel_term
    return float(_logsumexp(log_q).sum() / votes.sum())


def _logsumexp(x: F64) -> F64:
    top = x.max(axis=1, keepdims=True)
    result: F64 = np.log(np.exp(x - top).sum(axis=1, keepdims=True)) + top
    return result


def _best_temperature(evidence: F64, votes: F64, matrix: F64) -> float:
    """Golden-section search on log temperature (the likelihood is unimodal in practice)."""
    term = votes @ np.log(matrix).T
    low, high = _LOG_TAU_RANGE
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa = _mean_ll_given(evidence, votes, term, math.exp(a))
    fb = _mean_ll_given(evidence, votes, term, math.exp(b))
    for _ in range(_GOLDEN_STEPS):
        if fa < fb:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = _mean_ll_given(evidence, votes, term, math.exp(b))
        else:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = _mean_ll_given(evidence, votes, term, math.exp(a))
    return math.exp((low + high) / 2.0)


def _uniform(k: int, noise: float) -> F64:
    matrix = np.full((k, k), noise / max(k - 1, 1))
    np.fill_diagonal(matrix, 1.0 - noise)
    return matrix


def _reestimate(family: Family, k: int, noise: float, post: F64, q: F64, votes: F64) -> F64:
    if family == "uniform":
        return _uniform(k, noise)
    if family == "similar":
        confusion = post.T @ q  # soft: true intent -> where the checkers put its mass
        np.fill_diagonal(confusion, 0.0)
        confusion += confusion.sum(axis=1, keepdims=True) / (k * max(k - 1, 1)) + 1e-12
        np.fill_diagonal(confusion, 0.0)
        similar: F64 = noise * confusion / confusion.sum(axis=1, keepdims=True)
        np.fill_diagonal(similar, 1.0 - noise)
        return similar
    counts = post.T @ votes  # [true, observed]
    prior_weight = float(votes.sum()) / k
    free: F64 = (counts + prior_weight * _uniform(k, noise)) / (
        counts.sum(axis=1, keepdims=True) + prior_weight
    )
    return free
