"""One model configuration = featurizer spec + training parameters, as a flat params mapping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

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
# How the published file stores the table; the head is int8 either way. A 4-bit table
# (one fp32 scale per row) holds about 1.7 times the weights per byte of an int8 one, but
# onnxruntime unpacks it on every lookup: "auto" gives it to large bots, where the extra
# capacity pays (docs/architecture.md, decisions).
TableFormat = Literal["int4", "int8"]
TABLE_FORMATS: tuple[TableFormat, ...] = get_args(TableFormat)
# How a published file stores its weights: a table format, or fp32 when the gate refused
# every quantized one (a fallback sized to the cap in its own right, models/pipeline.py).
Layout = Literal["int4", "int8", "fp32"]
FP32_BYTES = 4
QuantizationMode = Literal["auto", "int4", "int8"]
QUANTIZATION_MODES: tuple[QuantizationMode, ...] = get_args(QuantizationMode)
QUANTIZATION = "quantization"
DEFAULT_QUANTIZATION: QuantizationMode = "auto"
INT4_MIN_UTTERANCES = 3000  # "auto" stores bots this large at int4
ROW_SCALE_BYTES = 4  # the int4 table's fp32 scale per row


def table_format(mode: QuantizationMode, n_texts: int) -> TableFormat:
    if mode == "auto":
        return "int4" if n_texts >= INT4_MIN_UTTERANCES else "int8"
    return mode


_FEATURIZER_KEYS = {f.name for f in fields(FeaturizerSpec)} - {"version"}
_TRAINING_KEYS = {f.name for f in fields(TrainParams)}
_MODEL_KEYS = {MAX_MODEL_KB, QUANTIZATION}


@dataclass(frozen=True)
class ModelConfig:
    featurizer: FeaturizerSpec = DEFAULT_FEATURIZER
    training: TrainParams = DEFAULT_TRAINING
    max_model_kb: float = DEFAULT_MAX_MODEL_KB
    quantization: TableFormat = "int8"

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> ModelConfig:
        """Defaults overridden by ``params``; an unknown key is an error, not a silent no-op."""
        params = dict(params or {})
        unknown = set(params) - _FEATURIZER_KEYS - _TRAINING_KEYS - _MODEL_KEYS
        if unknown:
            raise ConfigError(
                f"unknown model parameters {sorted(unknown)}; known: "
                f"{sorted(_FEATURIZER_KEYS | _TRAINING_KEYS | _MODEL_KEYS)}"
            )
        return cls().with_params(params)

    def with_params(self, params: Mapping[str, Any]) -> ModelConfig:
        featurizer = {k: v for k, v in params.items() if k in _FEATURIZER_KEYS}
        training = {k: v for k, v in params.items() if k in _TRAINING_KEYS}
        max_kb = float(params.get(MAX_MODEL_KB, self.max_model_kb))
        if not 0 < max_kb <= MAX_MODEL_KB_LIMIT:
            raise ConfigError(f"max_model_kb must be in (0, {MAX_MODEL_KB_LIMIT:g}], got {max_kb}")
        quantization = params.get(QUANTIZATION, self.quantization)
        if quantization not in TABLE_FORMATS:
            raise ConfigError(f"quantization must be one of {TABLE_FORMATS}, got {quantization!r}")
        try:
            return ModelConfig(
                replace(self.featurizer, **featurizer),
                replace(self.training, **training),
                max_kb,
                quantization,
            )
        except TypeError as exc:
            raise ConfigError(f"invalid model parameters: {exc}") from exc

    def to_params(self) -> dict[str, Any]:
        """Flat and JSON-ready: featurizer and training fields side by side."""
        featurizer = {k: v for k, v in self.featurizer.to_dict().items() if k in _FEATURIZER_KEYS}
        return {
            **featurizer,
            **self.training.to_dict(),
            MAX_MODEL_KB: self.max_model_kb,
            QUANTIZATION: self.quantization,
        }

    def resolved(self, n_texts: int, n_classes: int = 1) -> ModelConfig:
        """Data-scaled training defaults made explicit (see :meth:`TrainParams.schedule`)."""
        return replace(self, training=self.training.resolved(n_texts, n_classes))

    def model_kb(self, n_classes: int, label_bytes: int | None = None) -> float:
        """Estimated quantized file size: the table's rows (:func:`row_bytes`), the head at a
        byte per weight, fp32 bias, and about 4 KB of graph, scales and metadata (labels
        included)."""
        dim = self.training.dim
        table = self.featurizer.buckets * row_bytes(dim, self.quantization)
        return (table + overhead_bytes(n_classes, dim, label_bytes)) / 1024

    def fits(self, n_classes: int) -> bool:
        return self.model_kb(n_classes) <= self.max_model_kb


def row_bytes(dim: int, layout: Layout) -> int:
    """Bytes of one table row in the published file."""
    if layout == "int4":
        return (dim + 1) // 2 + ROW_SCALE_BYTES
    return dim * FP32_BYTES if layout == "fp32" else dim


def rows_under_cap(
    max_model_kb: float, n_classes: int, dim: int, layout: Layout, label_bytes: int
) -> int:
    """How many table rows of width ``dim`` fit under the cap beside everything else."""
    budget = max_model_kb * 1024 - overhead_bytes(n_classes, dim, label_bytes, layout)
    return int(budget // row_bytes(dim, layout))


def overhead_bytes(
    n_classes: int, dim: int, label_bytes: int | None = None, layout: Layout = "int8"
) -> int:
    """Everything in a file but the table: head (a byte per weight, four in fp32), fp32
    bias, graph, scales, metadata.

    ``label_bytes``: the labels' JSON in the metadata (estimated at 24 B each if unknown).
    """
    labels = 24 * n_classes if label_bytes is None else label_bytes
    head = dim * n_classes * (FP32_BYTES if layout == "fp32" else 1)
    return head + 4 * n_classes + labels + 4096
