"""PICO's noise channel and procedure: pure numpy, plus the real model family on small bots."""

from __future__ import annotations

import numpy as np
import pytest

from fleetserve.bots.fleet import make_fleet
from fleetserve.clean.channel import choose_family, fit_channel, posterior
from fleetserve.clean.family import FamilyChecker
from fleetserve.clean.pico import PicoConfig, run_pico


def synthetic(n: int, k: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log evidence from a 90%-confident checker, votes with ``noise`` uniform flips, truth)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    probs = np.full((n, k), 0.1 / (k - 1))
    probs[np.arange(n), truth] = 0.9
    observed = truth.copy()
    flipped = rng.random(n) < noise
    observed[flipped] = (truth[flipped] + rng.integers(1, k, flipped.sum())) % k
    votes = np.zeros((n, k))
    votes[np.arange(n), observed] = 1.0
    return np.log(probs), votes, truth


def test_channel_estimates_the_noise_rate_and_corrects_flips() -> None:
    evidence, votes, truth = synthetic(3000, 10, 0.15, seed=1)
    channel = fit_channel(evidence, votes, "uniform")
    assert channel.noise_rate == pytest.approx(0.15, abs=0.03)
    post = posterior(evidence, votes, channel)
    assert (post.argmax(axis=1) == truth).mean() > 0.97


def test_clean_labels_give_almost_no_noise() -> None:
    evidence, votes, _ = synthetic(2000, 10, 0.0, seed=2)
    channel = fit_channel(evidence, votes, "uniform")
    assert channel.noise_rate < 0.01


def test_structured_noise_chooses_a_structured_channel() -> None:
    evidence, votes, truth = synthetic(3000, 8, 0.0, seed=3)
    rng = np.random.default_rng(3)
    flipped = rng.random(truth.size) < 0.15
    observed = np.where(flipped, (truth + 1) % 8, truth)  # always towards the next intent
    votes = np.zeros_like(votes)
    votes[np.arange(truth.size), observed] = 1.0
    family, scores = choose_family(evidence, votes, seed=0)
    assert set(scores) == {"uniform", "similar", "free"}
    assert family == "free"
    assert scores["free"] > scores["uniform"]


def test_a_contradictory_item_follows_the_evidence() -> None:
    evidence = np.log(np.array([[0.05, 0.9, 0.05]] * 3 + [[0.9, 0.05, 0.05]] * 30))
    votes = np.zeros((33, 3))
    votes[0, [0, 1]] = 1.0  # labelled both 0 and 1; the checkers say 1
    votes[1:3, 1] = 1.0
    votes[3:, 0] = 1.0
    channel = fit_channel(evidence, votes, "uniform")
    assert posterior(evidence, votes, channel)[0].argmax() == 1


@pytest.fixture(scope="module")
def small_bot() -> tuple[list[str], np.ndarray, int]:
    bot = make_fleet(2, seed=0)[1]  # clinc-banking: 15 intents x 100
    intents = bot.intents()[:6]
    rows = [(u.text, intents.index(u.intent)) for u in bot.utterances if u.intent in intents]
    return [t for t, _ in rows], np.array([y for _, y in rows]), len(intents)


def test_pico_finds_and_corrects_flipped_labels(
    small_bot: tuple[list[str], np.ndarray, int],
) -> None:
    # Pooled over several seeded draws of the noise: one draw of a few dozen flips moves
    # recall by several points on its own.
    texts, truth, k = small_bot
    checker = FamilyChecker(texts).fit_predict
    found = corrected = flips = clean_changed = clean_rows = 0
    for draw in range(4):
        rng = np.random.default_rng(4 + draw)
        flipped = rng.choice(truth.size, truth.size // 10, replace=False)
        observed = truth.copy()
        observed[flipped] = (truth[flipped] + rng.integers(1, k, flipped.size)) % k
        votes = np.zeros((truth.size, k))
        votes[np.arange(truth.size), observed] = 1.0
        result = run_pico(votes, checker, PicoConfig(seed=1))
        found += len(set(result.suspects().tolist()) & set(flipped.tolist()))
        corrected += int((result.proposed[flipped] == truth[flipped]).sum())
        flips += flipped.size
        clean = np.setdiff1d(np.arange(truth.size), flipped)
        clean_changed += int((result.proposed[clean] != truth[clean]).sum())
        clean_rows += clean.size
        assert result.rounds[0].iteration == 0
        assert result.stop_reason in (
            "settled",
            "explains the observed labels worse",
            "max_iterations",
        )
    assert found >= 0.8 * flips
    assert corrected >= 0.75 * flips
    assert clean_changed <= 0.02 * clean_rows


def test_pico_leaves_clean_data_alone(small_bot: tuple[list[str], np.ndarray, int]) -> None:
    texts, truth, k = small_bot
    votes = np.zeros((truth.size, k))
    votes[np.arange(truth.size), truth] = 1.0
    result = run_pico(votes, FamilyChecker(texts).fit_predict, PicoConfig(seed=1))
    assert (result.proposed != truth).mean() <= 0.01


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="folds"):
        PicoConfig(folds=1)
    with pytest.raises(ValueError, match="threshold"):
        PicoConfig(threshold=1.0)
