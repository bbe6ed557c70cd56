"""EmbeddingBag + linear head, trained with softmax cross-entropy in numba-compiled steps.

The model is ``softmax(act(sum_i w_i * table[id_i]) @ head + bias)``. Each mini-batch step
(``kernel.run_steps``) pools only its own (text, n-gram) pairs and updates only the table
rows they touch: row-wise AdaGrad by default (one accumulated squared gradient per row), or
lazy Adam; the head and bias use Adam. Batches have a fixed composition (shuffled once per
seed, visited in a new order every epoch); the learning rate decays linearly to zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fleetserve.errors import ConfigError
from fleetserve.models import kernel
from fleetserve.models.featurize import Features

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Activation = Literal["tanh", "none"]
Optimizer = Literal["rowwise", "adam"]

TEXT_VISITS = 2000
BATCH_DIVISOR = 16
MIN_EPOCHS = 5
CLASS_VISITS = 100
# The table's row-wise AdaGrad step is lr times this (its gradients are batch means).
ROWWISE_LR_SCALE = 3.0


@dataclass(frozen=True)
class TrainParams:
    """Hyper-parameters of :func:`train`; ``None`` epochs or batch size scale with the data."""

    dim: int = 32
    epochs: int | None = None
    lr: float = 0.03
    batch_size: int | None = None
    dropout: float = 0.0  # of (text, table row) entries, drawn anew every step
    label_smoothing: float = 0.0
    activation: Activation = "tanh"
    init_scale: float = 0.1
    distill_weight: float = 0.5  # share of the teacher's distribution in the target
    optimizer: Optimizer = "rowwise"  # of the table; head and bias always use Adam

    def __post_init__(self) -> None:
        ok = (
            self.dim >= 1
            and (self.epochs is None or self.epochs >= 1)
            and self.lr > 0
            and (self.batch_size is None or self.batch_size >= 1)
            and 0 <= self.dropout < 1
            and 0 <= self.label_smoothing < 1
            and 0 <= self.distill_weight <= 1
            and self.activation in ("tanh", "none")
            and self.optimizer in ("rowwise", "adam")
        )
        if not ok:
            raise ConfigError(f"invalid training parameters: {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def schedule(self, n_texts: int, n_classes: int = 1) -> tuple[int, int]:
        """(epochs, batch size), filling in the data-scaled defaults.

        Epochs: enough for about ``TEXT_VISITS`` text visits in all and ``CLASS_VISITS``
        per intent, ``max(TEXT_VISITS, CLASS_VISITS * classes) / n``, within
        ``MIN_EPOCHS``..40: a small bot needs many passes to converge, and so do intents
        with few utterances among many (paraKQC as one bot: 7 each, 1,000 intents; 6 epochs
        scored 89.6 % on its test set, 14 scored 92.1 %). Dropout makes every pass noisier,
        so at least ``MIN_EPOCHS`` (fleet-like bots of 700+ utterances: 3 epochs scored 0.9
        point under 6 in cross-validation). Batches: about 1/``BATCH_DIVISOR`` of the data (12..64).
        """
        visits = max(TEXT_VISITS, CLASS_VISITS * n_classes)
        epochs = self.epochs or int(np.clip(round(visits / max(n_texts, 1)), MIN_EPOCHS, 40))
        batch = self.batch_size or int(np.clip(n_texts // BATCH_DIVISOR, 12, 64))
        return epochs, batch

    def resolved(self, n_texts: int, n_classes: int = 1) -> TrainParams:
        epochs, batch = self.schedule(n_texts, n_classes)
        return replace(self, epochs=epochs, batch_size=batch)


@dataclass(frozen=True)
class ModelWeights:
    table: F32  # [buckets, dim]
    head: F32  # [dim, classes]
    bias: F32  # [classes]
    activation: Activation

    @property
    def n_classes(self) -> int:
        return int(self.bias.size)


def pooled(table: F32, features: Features) -> F32:
    """sum_i w_i * table[id_i] per text (the graph's Gather and pooling MatMul)."""
    result: F32 = kernel.pool(features.indptr, features.ids, features.weights, table)
    return result


def forward(weights: ModelWeights, features: Features) -> F32:
    """Class probabilities, exactly what the exported ONNX graph computes (up to rounding)."""
    hidden = _activate(pooled(weights.table, features), weights.activation)
    return _softmax(hidden @ weights.head + weights.bias)


def train(
    features: Features,
    labels: I64,
    n_classes: int,
    buckets: int,
    params: TrainParams,
    seed: int,
    soft_targets: F32 | None = None,
    init: ModelWeights | None = None,
) -> ModelWeights:
    """Fit table, head and bias; deterministic for a given seed and input.

    ``soft_targets`` [texts, classes] is a teacher's distribution per text (distillation):
    the target becomes ``(1 - a) * smoothed one-hot + a * teacher`` with
    ``a = params.distill_weight``. ``init``: start from these weights.
    """
    n = features.n_texts
    if n == 0:
        raise ConfigError("cannot train on zero texts")
    epochs, batch_size = params.schedule(n, n_classes)
    rng = np.random.default_rng(seed)
    # Drawn in float32: a fleet bot's build draws four tables, and float64 draws plus a
    # conversion cost about 1 ms each.
    table = rng.random((buckets, params.dim), dtype=np.float32)
    table *= np.float32(2.0 * params.init_scale / np.sqrt(params.dim))
    table -= np.float32(params.init_scale / np.sqrt(params.dim))
    head = np.zeros((params.dim, n_classes), np.float32)
    bias = np.zeros(n_classes, np.float32)
    if init is not None:  # continue from trained weights
        table[:], head[:], bias[:] = init.table, init.head, init.bias
    order = rng.permutation(n)
    batches = [np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size)]
    starts = np.zeros(len(batches) + 1, np.int64)
    np.cumsum([b.size for b in batches], out=starts[1:])
    steps = np.concatenate([rng.permutation(len(batches)) for _ in range(epochs)]).astype(np.int64)
    kernel.seed(int(rng.integers(2**31)))
    adam = params.optimizer == "adam"
    distill = params.distill_weight if soft_targets is not None else 0.0
    soft = soft_targets if soft_targets is not None else np.zeros((1, n_classes), np.float32)
    kernel.run_steps(
        features.indptr,
        features.ids,
        np.ascontiguousarray(features.weights, np.float32),
        np.ascontiguousarray(labels, np.int64),
        np.ascontiguousarray(soft, np.float32),
        np.concatenate(batches).astype(np.int64),
        starts,
        steps,
        table,
        head,
        bias,
        np.zeros(2 * buckets * params.dim if adam else buckets, np.float32),
        np.zeros((2, params.dim + 1, n_classes), np.float32),
        np.array(
            [
                params.lr,
                ROWWISE_LR_SCALE,
                params.dropout,
                params.label_smoothing,
                distill,
                1.0 if params.activation == "tanh" else 0.0,
                1.0 if adam else 0.0,
            ],
            np.float32,
        ),
    )
    # Buckets no training text touches keep their random init, which would be noise at serve
    # time; zero them so unseen n-grams add nothing.
    table[np.bincount(features.ids, minlength=buckets) == 0] = 0.0
    return ModelWeights(table, head, bias, params.activation)


def _activate(x: F32, activation: Activation) -> F32:
    return np.tanh(x) if activation == "tanh" else x


def _softmax(logits: F32) -> F32:
    logits = logits - logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits
