"""One bot's training data, encoded once, with its featurizations cached per spec."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fleetserve.models.featurize import Features, FeaturizerSpec, featurize

I64 = npt.NDArray[np.int64]


@dataclass
class BotData:
    texts: Sequence[str]
    labels: I64  # index into ``label_names``
    label_names: tuple[str, ...]
    out_of_scope: Sequence[str] = ()
    _features: dict[tuple[FeaturizerSpec, str], Features] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    @property
    def label_bytes(self) -> int:
        """Size of the labels' JSON in a model file's metadata."""
        return len(json.dumps(list(self.label_names), ensure_ascii=False).encode())

    def features(self, spec: FeaturizerSpec) -> Features:
        """Every utterance featurized with ``spec`` (cached)."""
        return self._cached(spec, "texts", self.texts)

    def oos_features(self, spec: FeaturizerSpec) -> Features:
        return self._cached(spec, "oos", self.out_of_scope)

    def _cached(self, spec: FeaturizerSpec, name: str, texts: Sequence[str]) -> Features:
        key = (spec, name)
        if key not in self._features:
            self._features[key] = featurize(spec, texts)
        return self._features[key]


def concat(parts: Sequence[Features]) -> Features:
    """Texts of several batches, one after another."""
    counts = np.concatenate([np.diff(p.indptr) for p in parts])
    indptr = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Features(
        indptr,
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.weights for p in parts]),
    )
