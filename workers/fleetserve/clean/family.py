"""The bot's own model family, behind the one interface the data loop needs.

Everything in :mod:`fleetserve.clean` and :mod:`fleetserve.relabel` that trains a model
goes through this module: "train on these texts and labels with the default config,
return class probabilities (or the hidden features) for those texts". When the model
package changes, this is the one file to re-point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fleetserve.models.config import ModelConfig
from fleetserve.models.featurize import Features, featurize, select
from fleetserve.models.train import ModelWeights, forward, pooled, train

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


class FamilyChecker:
    """Checkers of one bot: its texts featurized once, models trained on any subset of rows."""

    def __init__(self, texts: Sequence[str], config: ModelConfig | None = None) -> None:
        self.config = config or ModelConfig()
        self.features: Features = featurize(self.config.featurizer, texts)

    @property
    def n_texts(self) -> int:
        return self.features.n_texts

    def fit(self, train_rows: I64, labels: I64, n_classes: int, seed: int) -> ModelWeights:
        """A model of the family trained on ``train_rows`` with ``labels[train_rows]``."""
        config = self.config.resolved(int(train_rows.size))
        return train(
            select(self.features, train_rows),
            labels[train_rows],
            n_classes,
            config.featurizer.buckets,
            config.training,
            seed,
        )

    def fit_predict(
        self, train_rows: I64, labels: I64, predict_rows: I64, n_classes: int, seed: int
    ) -> F32:
        """Class probabilities [len(predict_rows), n_classes] from a model trained on
        ``train_rows`` only (the checker never sees the rows it checks)."""
        weights = self.fit(train_rows, labels, n_classes, seed)
        probs: F32 = forward(weights, select(self.features, predict_rows))
        return probs


def hidden_features(
    train_texts: Sequence[str], train_labels: Sequence[str], texts: Sequence[str], seed: int = 0
) -> F32:
    """The family's pooled, activated embedding of ``texts`` after training on the bot's
    own labelled texts: the representation its classifier head separates intents with."""
    config = ModelConfig()
    intents = sorted(set(train_labels))
    index = {intent: i for i, intent in enumerate(intents)}
    labels = np.array([index[label] for label in train_labels], np.int64)
    checker = FamilyChecker(train_texts, config)
    weights = checker.fit(np.arange(len(train_texts), dtype=np.int64), labels, len(intents), seed)
    hidden = pooled(weights.table, featurize(config.featurizer, texts))
    result: F32 = np.tanh(hidden) if weights.activation == "tanh" else hidden
    return result
