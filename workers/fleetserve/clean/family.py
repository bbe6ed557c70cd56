"""The bot's own model family, behind the one interface the data loop needs.

Everything in :mod:`fleetserve.clean` that trains a model
goes through this module: "train on these texts and labels with the default config,
return class probabilities for those texts". When the model
package changes, this is the one file to re-point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fleetserve.models.config import ModelConfig
from fleetserve.models.featurize import Features, featurize, select
from fleetserve.models.train import ModelWeights, forward, train

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
        config = self.config.resolved(int(train_rows.size), n_classes)
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
