"""The training loop's inner steps, compiled with numba: sparse pooling, sparse table updates.

A step touches only the (text, n-gram) pairs of its batch: pooling gathers their rows, the
table gradient is scattered back to the rows they hit, and only those rows' optimizer state
moves (lazy updates). In numpy the same step had to go through a dense [texts, rows] matrix
that is ~95 % zeros on fleet-sized bots, plus ~40 small array calls; compiled, the whole
training of a fleet bot measured several times faster (docs/architecture.md, "Model
factory"). Numerics are float32 like the numpy forward pass; results are deterministic for a
seed (numba's generator is seeded from it) but not bit-identical to the earlier numpy code.

Functions are compiled on first use and cached on disk beside this file when it is
writable; ``warm_up`` compiles them before a fleet build forks its workers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

_BETA1 = np.float32(0.9)
_BETA2 = np.float32(0.999)
_EPS = np.float32(1e-8)


@njit(cache=True)
def seed(value: int) -> None:
    np.random.seed(value)


@njit(cache=True, fastmath=True)
def pool(indptr: I64, ids: I64, weights: F32, table: F32) -> F32:  # pragma: no cover - compiled
    """[texts, dim]: sum of weight * table row over each text's n-grams."""
    n = indptr.size - 1
    out = np.zeros((n, table.shape[1]), np.float32)
    dim = table.shape[1]
    for text in range(n):
        for j in range(indptr[text], indptr[text + 1]):
            w = weights[j]
            row = ids[j]
            for d in range(dim):
                out[text, d] += w * table[row, d]
    return out


@njit(cache=True, fastmath=True)
def run_steps(  # noqa: PLR0913, PLR0917 - flat arrays are what a compiled kernel takes
    indptr: I64,
    ids: I64,
    weights: F32,
    labels: I64,
    soft: F32,
    batch_rows: I64,
    batch_starts: I64,
    step_batches: I64,
    table: F32,
    head: F32,
    bias: F32,
    state: F32,
    moments: F32,
    hyper: F32,
) -> None:  # pragma: no cover - compiled
    """Every step of a training run, in place on ``table``, ``head`` and ``bias``.

    ``state``: row-wise AdaGrad's accumulator [buckets], or lazy Adam's two moments
    [2 * buckets * dim] when ``hyper[6]`` is 1. ``moments``: Adam's moments of head and
    bias, [2, dim + 1, classes] (bias in the last row). ``hyper``: lr, row-wise scale,
    dropout, label smoothing, distill weight (0: no soft targets), tanh (1/0), table Adam.
    """
    buckets, dim = table.shape
    # Dropout's draws come from an inline xorshift64* (seeded from numba's generator):
    # calling np.random per (text, n-gram) pair was about 15 % of a fleet bot's training.
    rng = np.empty(1, np.uint64)
    rng[0] = np.uint64(np.random.randint(1, 2**62))
    scratch = np.zeros((buckets, dim), np.float32)
    touched = np.zeros(buckets, np.bool_)
    touched_list = np.empty(buckets, np.int64)
    total = step_batches.size
    for step_index in range(total):
        batch = step_batches[step_index]
        rows = batch_rows[batch_starts[batch] : batch_starts[batch + 1]]
        lr = hyper[0] * np.float32(1.0 - step_index / total)  # linear decay, as fastText does
        step_size = lr * np.float32(np.sqrt(1.0 - 0.999 ** (step_index + 1)))
        step_size /= np.float32(1.0 - 0.9 ** (step_index + 1))
        pairs, used, hidden = _pool_batch(indptr, ids, weights, rows, table, hyper, rng)
        grad = _output_gradient(hidden, head, bias, labels, soft, rows, hyper)
        grad_hidden = _backprop_head(hidden, grad, head, bias, moments, step_size, hyper)
        count = _scatter(
            indptr, ids, rows, pairs, used, grad_hidden, scratch, touched, touched_list
        )
        if hyper[6] > 0:
            _adam_rows(table, state, scratch, touched, touched_list[:count], step_size)
        else:
            _rowwise_rows(table, state, scratch, touched, touched_list[:count], lr * hyper[1])


@njit(cache=True, fastmath=True)
def _pool_batch(
    indptr: I64, ids: I64, weights: F32, rows: I64, table: F32, hyper: F32, rng: U64
) -> tuple[I64, F32, F32]:  # pragma: no cover - compiled
    """Each text's activated sum of weight * row; dropout draws which pairs take part.

    A dropped pair gets weight 0 in ``used`` and costs nothing further. ``rng`` holds the
    xorshift state, advanced in place.
    """
    dropout = hyper[2]
    keep_scale = np.float32(1.0) / (np.float32(1.0) - dropout)
    dim = table.shape[1]
    size = rows.size
    pairs = np.empty(size + 1, np.int64)
    pairs[0] = 0
    for i in range(size):
        pairs[i + 1] = pairs[i] + indptr[rows[i] + 1] - indptr[rows[i]]
    used = np.empty(pairs[size], np.float32)
    hidden = np.zeros((size, dim), np.float32)
    drop_below = np.uint64(dropout * 4294967296.0)  # a 32-bit draw under this drops the pair
    state = rng[0]
    total = np.zeros(dim, np.float32)  # a local sum: the compiler need not reload hidden
    for i in range(size):
        first = indptr[rows[i]] - pairs[i]
        total[:] = 0.0
        for k in range(pairs[i], pairs[i + 1]):
            w = weights[first + k]
            if dropout > 0:
                state ^= state >> np.uint64(12)
                state ^= state << np.uint64(25)
                state ^= state >> np.uint64(27)
                draw = (state * np.uint64(2685821657736338717)) >> np.uint64(32)
                w = np.float32(0.0) if draw < drop_below else w * keep_scale
            used[k] = w
            if w == 0:
                continue
            row = ids[first + k]
            for d in range(dim):
                total[d] += w * table[row, d]
        hidden[i] = total
    rng[0] = state
    if hyper[5] > 0:
        hidden = np.tanh(hidden)
    return pairs, used, hidden


@njit(cache=True, fastmath=True)
def _output_gradient(
    hidden: F32, head: F32, bias: F32, labels: I64, soft: F32, rows: I64, hyper: F32
) -> F32:  # pragma: no cover - compiled
    """d loss / d logits, averaged over the batch (softmax minus the target)."""
    smooth, distill = hyper[3], hyper[4]
    hard = np.float32(1.0) - distill if distill > 0 else np.float32(1.0)
    classes = head.shape[1]
    grad = hidden @ head
    for i in range(rows.size):
        top = np.float32(-np.inf)
        for c in range(classes):
            grad[i, c] += bias[c]
            top = max(top, grad[i, c])
        norm = np.float32(0.0)
        for c in range(classes):
            grad[i, c] = np.exp(grad[i, c] - top)
            norm += grad[i, c]
        for c in range(classes):
            grad[i, c] = grad[i, c] / norm - hard * smooth / classes
            if distill > 0:
                grad[i, c] -= distill * soft[rows[i], c]
        grad[i, labels[rows[i]]] -= hard * (np.float32(1.0) - smooth)
    grad /= np.float32(rows.size)
    return grad


@njit(cache=True, fastmath=True)
def _backprop_head(
    hidden: F32, grad: F32, head: F32, bias: F32, moments: F32, step_size: float, hyper: F32
) -> F32:  # pragma: no cover - compiled
    """The hidden layer's gradient (with the head before this step), then Adam on the head."""
    size, dim = hidden.shape
    classes = head.shape[1]
    grad_hidden = np.zeros((size, dim), np.float32)
    grad_head = np.zeros((dim + 1, classes), np.float32)
    for i in range(size):
        for c in range(classes):
            grad_head[dim, c] += grad[i, c]
        for d in range(dim):
            total = np.float32(0.0)
            for c in range(classes):
                total += grad[i, c] * head[d, c]
                grad_head[d, c] += hidden[i, d] * grad[i, c]
            if hyper[5] > 0:
                total *= np.float32(1.0) - hidden[i, d] * hidden[i, d]
            grad_hidden[i, d] = total
    for r in range(dim + 1):
        for c in range(classes):
            g = grad_head[r, c]
            m = _BETA1 * moments[0, r, c] + (np.float32(1.0) - _BETA1) * g
            v = _BETA2 * moments[1, r, c] + (np.float32(1.0) - _BETA2) * g * g
            moments[0, r, c], moments[1, r, c] = m, v
            update = step_size * m / (np.sqrt(v) + _EPS)
            if r < dim:
                head[r, c] -= update
            else:
                bias[c] -= update
    return grad_hidden


@njit(cache=True, fastmath=True)
def _scatter(  # noqa: PLR0913, PLR0917 - flat arrays are what a compiled kernel takes
    indptr: I64,
    ids: I64,
    rows: I64,
    pairs: I64,
    used: F32,
    grad_hidden: F32,
    scratch: F32,
    touched: npt.NDArray[np.bool_],
    touched_list: I64,
) -> int:  # pragma: no cover - compiled
    """Sum each touched row's gradient into ``scratch``; returns how many rows were touched."""
    dim = scratch.shape[1]
    count = 0
    for i in range(rows.size):
        first = indptr[rows[i]] - pairs[i]
        for k in range(pairs[i], pairs[i + 1]):
            w = used[k]
            if w == 0:
                continue
            row = ids[first + k]
            if not touched[row]:
                touched[row] = True
                touched_list[count] = row
                count += 1
            gradient = grad_hidden[i]
            target = scratch[row]
            for d in range(dim):
                target[d] += w * gradient[d]
    return count


# The optimizer visits every row a step touched: about half the table of a fleet bot per step.
# One call per step that loops over rows, on 1-D row views, measured 20 % less training time
# than a call per row with 2-D indexing.


@njit(cache=True, fastmath=True)
def _rowwise_rows(
    table: F32, state: F32, scratch: F32, touched: npt.NDArray[np.bool_], rows: I64, step: float
) -> None:  # pragma: no cover - compiled
    """Row-wise AdaGrad: one accumulated mean squared gradient per row."""
    dim = table.shape[1]
    inverse_dim = np.float32(1.0) / np.float32(dim)
    for row in rows:
        gradient = scratch[row]
        weights = table[row]
        squares = np.float32(0.0)
        for d in range(dim):
            squares += gradient[d] * gradient[d]
        state[row] += squares * inverse_dim
        factor = step / (np.sqrt(state[row]) + _EPS)
        for d in range(dim):
            weights[d] -= factor * gradient[d]
            gradient[d] = 0.0
        touched[row] = False


@njit(cache=True, fastmath=True)
def _adam_rows(
    table: F32,
    state: F32,
    scratch: F32,
    touched: npt.NDArray[np.bool_],
    rows: I64,
    step_size: float,
) -> None:  # pragma: no cover - compiled
    """Lazy Adam: a row's moments move only when a batch touches it."""
    buckets, dim = table.shape
    for row in rows:
        gradient = scratch[row]
        weights = table[row]
        first = state[row * dim : (row + 1) * dim]
        second = state[(buckets + row) * dim : (buckets + row + 1) * dim]
        for d in range(dim):
            g = gradient[d]
            m = _BETA1 * first[d] + (np.float32(1.0) - _BETA1) * g
            v = _BETA2 * second[d] + (np.float32(1.0) - _BETA2) * g * g
            first[d], second[d] = m, v
            weights[d] -= step_size * m / (np.sqrt(v) + _EPS)
            gradient[d] = 0.0
        touched[row] = False


def warm_up() -> None:
    """Compile (or load from the disk cache) every kernel on a tiny problem."""
    indptr = np.array([0, 2, 3], np.int64)
    ids = np.array([0, 1, 1], np.int64)
    weights = np.ones(3, np.float32)
    table = np.zeros((2, 2), np.float32)
    pool(indptr, ids, weights, table)
    seed(0)
    for table_adam in (0.0, 1.0):
        run_steps(
            indptr,
            ids,
            weights,
            np.array([0, 1], np.int64),
            np.zeros((2, 2), np.float32),
            np.array([0, 1], np.int64),
            np.array([0, 2], np.int64),
            np.array([0], np.int64),
            table.copy(),
            np.zeros((2, 2), np.float32),
            np.zeros(2, np.float32),
            np.zeros(8 if table_adam else 2, np.float32),
            np.zeros((2, 3, 2), np.float32),
            np.array([0.03, 3.0, 0.3, 0.1, 0.0, 1.0, table_adam], np.float32),
        )
