"""One model configuration = featurizer spec + training parameters, as a flat params mapping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from fleetserve.core.facts import MAX_MODEL_KB_LIMIT
from fleetserve.errors import ConfigError
from fleetserve.models.featurize import FeaturizerSpec
from fleetserve.models.train import TrainParams

# Defaults for the fleet. The table's bucket count is then fitted to the size cap and to
# the bot's own n-grams (models/sizing.py); dropout and label smoothing regularize the small
# bots that most of a fleet is (docs/architecture.md, "Model factory", has the measurements).
DEFAULT_FEATURIZER = FeaturizerSpec()
DEFAULT_TRAINING = TrainParams(dim=40, dropout=0.3, label_smoothing=0.1)
# A search constraint, not a model property: candidates whose int8 file would exceed it
# are skipped.
MAX_MODEL_KB = "max_model_kb"
DEFAULT_MAX_MODEL_KB = 150.0

_FEATURIZER_KEYS = {f.name for f in fields(FeaturizerSpec)} - {"version"}
_TRAINING_KEYS = {f.name for f in fields(TrainParams)}


@dataclass(frozen=True)
class ModelConfig:
    featurizer: FeaturizerSpec = DEFAULT_FEATURIZER
    training: TrainParams = DEFAULT_TRAINING
    max_model_kb: float = DEFAULT_MAX_MODEL_KB

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> ModelConfig:
        """Defaults overridden by ``params``; an unknown key is an error, not a silent no-op."""
        params = dict(params or {})
        unknown = set(params) - _FEATURIZER_KEYS - _TRAINING_KEYS - {MAX_MODEL_KB}
        if unknown:
            raise ConfigError(
                f"unknown model parameters {sorted(unknown)}; known: "
                f"{sorted(_FEATURIZER_KEYS | _TRAINING_KEYS | {MAX_MODEL_KB})}"
            )
        return cls().with_params(params)

    def with_params(self, params: Mapping[str, Any]) -> ModelConfig:
        featurizer = {k: v for k, v in params.items() if k in _FEATURIZER_KEYS}
        training = {k: v for k, v in params.items() if k in _TRAINING_KEYS}
        max_kb = float(params.get(MAX_MODEL_KB, self.max_model_kb))
        if not 0 < max_kb <= MAX_MODEL_KB_LIMIT:
            raise ConfigError(f"max_model_kb must be in (0, {MAX_MODEL_KB_LIMIT:g}], got {max_kb}")
        try:
            return ModelConfig(
                replace(self.featurizer, **featurizer),
                replace(self.training, **training),
                max_kb,
            )
        except TypeError as exc:
            raise ConfigError(f"invalid model parameters: {exc}") from exc

    def to_params(self) -> dict[str, Any]:
        """Flat and JSON-ready: featurizer and training fields side by side."""
        featurizer = {k: v for k, v in self.featurizer.to_dict().items() if k in _FEATURIZER_KEYS}
        return {**featurizer, **self.training.to_dict(), MAX_MODEL_KB: self.max_model_kb}

    def resolved(self, n_texts: int, n_classes: int = 1) -> ModelConfig:
        """Data-scaled training defaults made explicit (see :meth:`TrainParams.schedule`)."""
        return replace(self, training=self.training.resolved(n_texts, n_classes))

    def model_kb(self, n_classes: int, label_bytes: int | None = None) -> float:
        """Estimated int8 file size: table and head at a byte per weight, fp32 bias, and
        about 4 KB of graph, scales and metadata (labels included)."""
        dim = self.training.dim
        return (self.featurizer.buckets * dim + overhead_bytes(n_classes, dim, label_bytes)) / 1024

    def fits(self, n_classes: int) -> bool:
        return self.model_kb(n_classes) <= self.max_model_kb


def overhead_bytes(n_classes: int, dim: int, label_bytes: int | None = None) -> int:
    """Everything in an int8 file but the table: head, fp32 bias, graph, scales, metadata.

    ``label_bytes``: the labels' JSON in the metadata (estimated at 24 B each if unknown).
    """
    labels = 24 * n_classes if label_bytes is None else label_bytes
    return dim * n_classes + 4 * n_classes + labels + 4096
