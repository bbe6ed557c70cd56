"""Distillation's teachers: how many train, from which seeds, and what the student is shown."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fleetserve.models.config import ModelConfig
from fleetserve.models.data import BotData
from fleetserve.models.distill import (
    TEACHER_SEED_STRIDE,
    Distillation,
    _teacher_config,
    teachers_distribution,
)
from fleetserve.models.featurize import featurize, select
from fleetserve.models.train import forward, train

WORDS = {
    "weather": ["rain", "sunny", "forecast", "umbrella"],
    "music": ["song", "playlist", "guitar", "album"],
    "food": ["pizza", "noodles", "salad", "bread"],
}


def bot() -> BotData:
    texts, labels = [], []
    for label, words in enumerate(WORDS.values()):
        for i, word in enumerate(words):
            for filler in ("tell me about", "i want", "what about the"):
                texts.append(f"{filler} {word} {words[(i + 1) % len(words)]}")
                labels.append(label)
    return BotData(texts, np.array(labels, np.int64), tuple(WORDS))


CONFIG = ModelConfig.from_params({"buckets": 512, "dim": 8}).resolved(36, 3)
SMALL_TEACHER = Distillation(teacher_dim=8, max_teacher_buckets=1024)


def one_teacher(data: BotData, rows: np.ndarray, texts: list[str], seed: int) -> np.ndarray:
    teacher = _teacher_config(CONFIG, SMALL_TEACHER)
    weights = train(
        select(data.features(teacher.featurizer), rows),
        data.labels[rows],
        data.n_classes,
        teacher.featurizer.buckets,
        teacher.training,
        seed,
    )
    return forward(weights, featurize(teacher.featurizer, texts))


def test_the_student_learns_the_mean_of_teachers_from_their_own_seeds() -> None:
    data = bot()
    rows = np.arange(0, len(data.texts), 2, dtype=np.int64)  # a fold: half the rows
    copies = ["rain playlist", "about the album"]
    texts = [data.texts[i] for i in rows.tolist()] + copies  # what the teachers score
    first = one_teacher(data, rows, texts, seed=4)
    second = one_teacher(data, rows, texts, seed=4 + TEACHER_SEED_STRIDE)
    assert not np.allclose(first, second)  # the seeds differ, so do the teachers

    lone = teachers_distribution(data, rows, copies, CONFIG, replace(SMALL_TEACHER, teachers=1), 3)
    pair = teachers_distribution(data, rows, copies, CONFIG, replace(SMALL_TEACHER, teachers=2), 3)

    np.testing.assert_allclose(lone, first, rtol=1e-6)
    np.testing.assert_allclose(pair, (first + second) / 2, rtol=1e-5)
    assert pair.sum(axis=1) == pytest.approx(np.ones(len(texts)), abs=1e-5)
