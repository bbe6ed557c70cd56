"""Fit one model on some of a bot's rows, optionally distilled from a larger teacher.

The teacher is the same family at several times the size (more buckets, a wider table,
two more epochs' worth of steps): it is never published, so it may be as large as it likes.
Two of them, from different seeds, are averaged: their mistakes partly cancel. The second
costs a large bot 10-33 % more build CPU (docs/architecture.md, decisions, has both). The
student then learns from the teachers' distribution on the real utterances and on
word-dropped copies of them: copies are new inputs whose right answer is uncertain, and
the teachers' soft labels say how uncertain, which a hard label cannot (Tang et al. 2019,
"Distilling task-specific knowledge from BERT into simple neural networks", used masked
copies the same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from fleetserve.models.config import ModelConfig
from fleetserve.models.data import BotData, concat
from fleetserve.models.featurize import featurize, select
from fleetserve.models.train import ModelWeights, forward, train

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
# Apart from the small offsets the build derives from a seed (word drops use seed + 7).
TEACHER_SEED_STRIDE = 101
DistillMode = Literal["auto", "on", "off"]
DISTILL_MODES: tuple[DistillMode, ...] = ("auto", "on", "off")
# "auto" distills bots with at least this many utterances. Measured with one teacher (cross-
# validated, fleet-like bots): +0.05 point under 700 utterances at 3.7x the build time, +0.65
# at 700+ for 4.5x; on whole datasets as one bot, +1.8 (CLINC150) and +2.2 (paraKQC) on their
# test sets. Bots this large are under 0.1 % of a generated fleet, so the fleet pays almost
# nothing. Two teachers: a 720-utterance bot took 4.9x the undistilled build's CPU (one: 3.9x).
AUTO_MIN_UTTERANCES = 3000


def distills(mode: DistillMode, n_texts: int) -> bool:
    return mode == "on" or (mode == "auto" and n_texts >= AUTO_MIN_UTTERANCES)


@dataclass(frozen=True)
class Distillation:
    teacher_buckets_factor: int = 4
    teacher_dim: int = 64
    max_teacher_buckets: int = 1 << 16
    copies: int = 2  # word-dropped copies of each training utterance
    word_drop: float = 0.25
    weight: float = 0.7  # share of the teacher's distribution in the student's target
    # Teachers trained from different seeds; the student learns their mean distribution.
    teachers: int = 2


def fit(
    data: BotData,
    rows: I64,
    config: ModelConfig,
    seed: int,
    distillation: Distillation | None = None,
    init: ModelWeights | None = None,
) -> ModelWeights:
    """Train ``config`` on ``data``'s ``rows``; with a teacher when ``distillation`` is set.

    ``init``: start from these weights instead of a random table.
    """
    spec = config.featurizer
    features = select(data.features(spec), rows)
    if distillation is None:
        labels = data.labels[rows]
        return train(
            features, labels, data.n_classes, spec.buckets, config.training, seed, init=init
        )
    originals = [data.texts[i] for i in rows.tolist()]
    copies = word_dropped(originals, distillation, seed)
    soft = teachers_distribution(data, rows, copies, config, distillation, seed)
    labels = np.concatenate([data.labels[rows]] * (1 + distillation.copies))
    student_features = concat([features, featurize(spec, copies)])
    training = replace(config.training, distill_weight=distillation.weight)
    return train(
        student_features,
        labels,
        data.n_classes,
        spec.buckets,
        training,
        seed,
        soft_targets=soft,
        init=init,
    )


def teachers_distribution(
    data: BotData,
    rows: I64,
    copies: Sequence[str],
    config: ModelConfig,
    distillation: Distillation,
    seed: int,
) -> F32:
    """The mean class distribution of ``teachers`` teachers fit on ``rows``, over those rows'
    texts and then ``copies`` (the rows' features are the bot's cached ones, not hashed again).

    Each teacher starts from its own seed (the first from ``seed + 1``, as a lone teacher
    always has), so their mistakes differ and partly cancel in the mean.
    """
    teacher = _teacher_config(config, distillation)
    features = select(data.features(teacher.featurizer), rows)
    labels = data.labels[rows]
    inputs = concat([features, featurize(teacher.featurizer, copies)])
    total = np.zeros((inputs.n_texts, data.n_classes), dtype=np.float32)
    for k in range(distillation.teachers):
        weights = train(
            features,
            labels,
            data.n_classes,
            teacher.featurizer.buckets,
            teacher.training,
            seed + 1 + TEACHER_SEED_STRIDE * k,
        )
        total += forward(weights, inputs)
    total /= distillation.teachers
    return total


def _teacher_config(config: ModelConfig, distillation: Distillation) -> ModelConfig:
    buckets = min(
        distillation.max_teacher_buckets,
        config.featurizer.buckets * distillation.teacher_buckets_factor,
    )
    return replace(
        config,
        featurizer=replace(config.featurizer, buckets=buckets),
        training=replace(config.training, dim=max(distillation.teacher_dim, config.training.dim)),
    )


def word_dropped(texts: Sequence[str], distillation: Distillation, seed: int) -> list[str]:
    """``copies`` versions of every text with each word dropped at ``word_drop`` (never all)."""
    rng = np.random.default_rng(seed + 7)
    out: list[str] = []
    for _ in range(distillation.copies):
        for text in texts:
            words = text.split()
            keep = rng.random(len(words)) >= distillation.word_drop
            kept = [w for w, k in zip(words, keep, strict=True) if k]
            out.append(" ".join(kept or words[:1]))
    return out
