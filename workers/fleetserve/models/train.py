"""EmbeddingBag + linear head, trained with softmax cross-entropy and Adam in numpy.

The model is ``softmax(act(sum_i w_i * table[id_i]) @ head + bias)``. A numpy gather and
scatter over the ~130 (id, weight) pairs per text is memory-bound and slow (np.add.reduceat
over ``table[ids]`` measured ~7x slower than sgemm here), so each mini-batch becomes a dense
[batch, rows it touches] matrix and both the forward pooling and the table gradient are one
sgemm each. Work per epoch is at most ~4 * texts * buckets * dim flops: proportional to the
model's size, which the fleet keeps small anyway. Batches have a fixed composition (shuffled
once per seed, visited in a new order every epoch) so their matrices are built once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fleetserve.errors import ConfigError
from fleetserve.models.featurize import Features

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Activation = Literal["tanh", "none"]
Optimizer = Literal["rowwise", "adam"]

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8
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
    """sum_i w_i * table[id_i] per text (the graph's Gather, Mul and ReduceSum)."""
    out = np.zeros((features.n_texts, table.shape[1]), np.float32)
    filled = np.flatnonzero(np.diff(features.indptr))
    if filled.size:  # reduceat needs strictly increasing starts: skip texts without features
        contributions = table[features.ids] * features.weights[:, None]
        out[filled] = np.add.reduceat(contributions, features.indptr[filled], axis=0)
    return out


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
) -> ModelWeights:
    """Fit table, head and bias; deterministic for a given seed and input.

    ``soft_targets`` [texts, classes] is a teacher's distribution per text (distillation):
    the target becomes ``(1 - a) * smoothed one-hot + a * teacher`` with
    ``a = params.distill_weight``.
    """
    epochs, batch_size = params.schedule(features.n_texts, n_classes)
    rng = np.random.default_rng(seed)
    table = rng.uniform(-1.0, 1.0, (buckets, params.dim)) * params.init_scale / np.sqrt(params.dim)
    state = _State.start(table.astype(np.float32), n_classes, params.optimizer)
    plan = _BatchPlan.make(features, buckets, batch_size, params.dropout, rng)
    total = epochs * len(plan.rows)
    for step, batch in enumerate(plan.steps(epochs, rng), start=1):
        lr = params.lr * (1.0 - (step - 1) / total)  # linear decay, as fastText does
        chosen = plan.batches[batch]
        x = chosen.draw(params.dropout, rng)
        rows = plan.rows[batch]
        soft = None if soft_targets is None else soft_targets[rows]
        _step(state, chosen.columns, x, labels[rows], soft, params, lr, step)
    # Buckets no training text touches keep their random init, which would be noise at serve
    # time; zero them so unseen n-grams add nothing.
    state.table[np.bincount(features.ids, minlength=buckets) == 0] = 0.0
    return ModelWeights(state.table, state.head, state.bias, params.activation)


@dataclass
class _State:
    table: F32
    head: F32
    bias: F32
    moments: dict[str, tuple[F32, F32]]
    rowwise: F32  # row-wise AdaGrad's accumulator, [buckets]

    @classmethod
    def start(cls, table: F32, n_classes: int, optimizer: Optimizer) -> _State:
        head = np.zeros((table.shape[1], n_classes), np.float32)
        bias = np.zeros(n_classes, np.float32)
        params = [("head", head), ("bias", bias)]
        if optimizer == "adam":
            params.append(("table", table))
        moments = {name: (np.zeros_like(p), np.zeros_like(p)) for name, p in params}
        return cls(table, head, bias, moments, np.zeros(table.shape[0], np.float32))


def _step(
    state: _State,
    columns: I64,
    x: F32,
    y: I64,
    soft: F32 | None,
    params: TrainParams,
    lr: float,
    step: int,
) -> None:
    """One step on a batch: only the table rows it touches are read and written.

    Rows outside the batch keep their optimizer state untouched (lazy, as TensorFlow's
    LazyAdam), so a step costs the batch's rows, not the whole table.
    """
    rows = state.table[columns]
    hidden = _activate(x @ rows, params.activation)
    grad = _softmax(hidden @ state.head + state.bias)
    hard = 1.0 - params.distill_weight if soft is not None else 1.0
    smooth = params.label_smoothing
    if smooth:
        grad -= hard * smooth / grad.shape[1]
    grad[np.arange(y.size), y] -= hard * (1.0 - smooth)
    if soft is not None:
        grad -= params.distill_weight * soft
    grad /= np.float32(y.size)
    grad_hidden = grad @ state.head.T
    if params.activation == "tanh":
        grad_hidden *= 1.0 - hidden * hidden
    # Adam's bias corrections folded into the step size.
    size = np.float32(lr * np.sqrt(1.0 - _BETA2**step) / (1.0 - _BETA1**step))
    _adam(state.head, hidden.T @ grad, *state.moments["head"], size)
    _adam(state.bias, grad.sum(axis=0), *state.moments["bias"], size)
    grad_rows = x.T @ grad_hidden
    if params.optimizer == "rowwise":
        _rowwise_adagrad(state, columns, rows, grad_rows, np.float32(lr * ROWWISE_LR_SCALE))
        return
    mean, var = state.moments["table"]
    mean_rows, var_rows = mean[columns], var[columns]
    _adam(rows, grad_rows, mean_rows, var_rows, size)
    state.table[columns], mean[columns], var[columns] = rows, mean_rows, var_rows


def _rowwise_adagrad(
    state: _State, columns: I64, rows: F32, grad: F32, step_size: np.float32
) -> None:
    """Row-wise AdaGrad: one accumulated squared gradient per table row (as FBGEMM's sparse
    embedding optimizers keep), so a step gathers and scatters the rows and one scalar each
    instead of the rows and two moment matrices. Measured on fleet-like bots: the same or
    better cross-validated accuracy than lazy Adam at about 0.75x the training time.
    """
    accumulator = state.rowwise
    totals = accumulator[columns] + np.einsum("ij,ij->i", grad, grad) / np.float32(grad.shape[1])
    accumulator[columns] = totals
    np.sqrt(totals, out=totals)
    totals += _EPS
    grad /= totals[:, None]
    grad *= step_size
    rows -= grad
    state.table[columns] = rows


def _adam(param: F32, grad: F32, mean: F32, var: F32, size: np.float32) -> None:
    mean *= _BETA1
    mean += (1.0 - _BETA1) * grad
    var *= _BETA2
    grad *= grad
    grad *= 1.0 - _BETA2
    var += grad
    np.sqrt(var, out=grad)
    grad += _EPS
    np.divide(mean, grad, out=grad)
    grad *= size
    param -= grad


def _activate(x: F32, activation: Activation) -> F32:
    return np.tanh(x) if activation == "tanh" else x


def _softmax(logits: F32) -> F32:
    logits = logits - logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


@dataclass(frozen=True)
class _Batch:
    """One mini-batch: the table rows it touches and the non-zeros of its [texts, rows]
    matrix. Pooling and the table gradient are one dense matmul each over that matrix:
    a gather and segment sum over the non-zeros alone (np.add.reduceat) measured ~2.7x
    slower on fleet-like bots, even where only 4 % of the matrix is filled.
    """

    columns: I64
    flat: I64  # positions of the non-zeros in the [texts, columns] matrix, row-major
    values: F32
    shape: tuple[int, int]

    def draw(self, dropout: float, rng: np.random.Generator) -> F32:
        """This step's matrix: dropped (text, row) entries are zero, the rest rescaled."""
        values = self.values
        if dropout:  # a dropped n-gram takes its collisions in the same row along
            keep = rng.random(values.size) >= dropout
            values = np.where(keep, values / np.float32(1.0 - dropout), np.float32(0.0))
        out = np.zeros(self.shape[0] * self.shape[1], np.float32)
        out[self.flat] = values
        return out.reshape(self.shape)


@dataclass(frozen=True)
class _BatchPlan:
    """Fixed mini-batches, each kept as the sparse form of a dense [batch, columns] matrix."""

    rows: list[I64]
    batches: list[_Batch]

    @classmethod
    def make(
        cls,
        features: Features,
        buckets: int,
        batch_size: int,
        dropout: float,  # noqa: ARG003 - dropout is drawn per step in _Batch.draw
        rng: np.random.Generator,
    ) -> _BatchPlan:
        n = features.n_texts
        if n == 0:
            raise ConfigError("cannot train on zero texts")
        order = rng.permutation(n)
        rows = [np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size)]
        return cls(rows, [_batch(features, buckets, r) for r in rows])

    def steps(self, epochs: int, rng: np.random.Generator) -> Iterator[int]:
        for _ in range(epochs):
            yield from (int(i) for i in rng.permutation(len(self.rows)))


def _batch(features: Features, buckets: int, rows: I64) -> _Batch:
    start, stop = features.indptr[rows], features.indptr[rows + 1]
    counts = stop - start
    # Positions of this batch's (id, weight) pairs in the CSR arrays, row after row.
    offsets = np.cumsum(counts) - counts
    pairs = np.arange(int(counts.sum())) - np.repeat(offsets - start, counts)
    columns, column_of = _compact(features.ids[pairs], buckets)
    flat = np.repeat(np.arange(rows.size) * columns.size, counts) + column_of
    # Duplicates within a text add up; bincount does it several times faster than np.add.at.
    dense = np.bincount(flat, features.weights[pairs], minlength=rows.size * columns.size)
    nonzero = np.flatnonzero(dense)
    values = dense[nonzero].astype(np.float32)
    return _Batch(columns, nonzero, values, (int(rows.size), int(columns.size)))


def _compact(ids: I64, buckets: int) -> tuple[I64, I64]:
    """(sorted distinct ids, index of each id among them): np.unique without its sort."""
    present = np.zeros(buckets, np.bool_)
    present[ids] = True
    position = np.cumsum(present) - 1
    return np.flatnonzero(present), position[ids]
