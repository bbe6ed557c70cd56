"""Quantized model files: int8 (table and head) or int4 (a 4-bit table and an int8 head).

int8 is onnxruntime's dynamic quantization of the fp32 graph's Gather and MatMul, one scale
for the whole table. int4 packs the table here, symmetric with one scale per row (rows of
a hashed table differ in magnitude by orders: a shared scale would spend most of 16 levels
on the largest), and leaves the head to the same dynamic quantization.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (  # type: ignore[import-untyped]
    QuantType,
    quantize_dynamic,
)

from fleetserve.models.graph import (
    POOL_NODE,
    PackedTable,
    export_onnx,
    with_metadata,
    without_metadata,
)
from fleetserve.models.train import F32, ModelWeights

# The quantizer warns on the root logger, once per model, unless the model carries the
# marker its pre-processing step (symbolic shape inference + graph optimization) leaves.
# Our graphs come from graph.py already minimal with static ranks, so that step has nothing
# to do; the marker only keeps 10,000 builds from printing 10,000 warnings. It and the
# quantizer's own "onnx.infer" entry are removed from the result.
_PRE_PROCESSED = "onnx.quant.pre_process"
_QUANTIZER_KEYS = {_PRE_PROCESSED, "onnx.infer"}


INT4_LEVELS = 7  # symmetric: -7..7 of the signed nibble's -8..7
CLIP_FRACTIONS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)


def quantize_int8(model_bytes: bytes) -> bytes:
    """Weights of Gather and MatMul as int8; activations quantized on the fly (uint8)."""
    return _dynamic(model_bytes, ["Gather", "MatMul"])


def quantize_int4(weights: ModelWeights, metadata: Mapping[str, str]) -> bytes:
    """The table packed at 4 bits (:func:`pack_int4`), the head int8 as in :func:`quantize_int8`.

    An odd width gets a zero column and a zero head row: the lookup returns whole bytes.
    """
    if weights.table.shape[1] % 2:
        weights = ModelWeights(
            np.pad(weights.table, ((0, 0), (0, 1))),
            np.pad(weights.head, ((0, 1), (0, 0))),
            weights.bias,
            weights.activation,
        )
    return _dynamic(export_onnx(weights, metadata, pack_int4(weights.table)), ["MatMul"])


def pack_int4(table: F32) -> PackedTable:
    """Row-wise symmetric 4-bit codes, two per byte, low nibble first, stored plus 8."""
    dim = table.shape[1]
    if dim % 2:
        raise ValueError(f"a 4-bit table needs an even width, got {dim}")
    scales = _row_scales(table)
    safe = np.where(scales > 0, scales, np.float32(1))
    codes = (np.clip(np.rint(table / safe), -INT4_LEVELS, INT4_LEVELS) + 8).astype(np.uint8)
    nibbles = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    return PackedTable(nibbles, scales)


def _row_scales(table: F32) -> F32:
    """Per row, the scale of least squared error among clipping points of the row's peak.

    With 15 levels, scaling to the peak spends the outer levels on one or two weights;
    clipping them trades a little error there for finer steps everywhere else.
    """
    peak = np.abs(table).max(axis=1, keepdims=True) / INT4_LEVELS
    best = peak.astype(np.float32)
    best_error = np.full(peak.shape, np.inf, np.float32)
    for fraction in CLIP_FRACTIONS:
        scale = (peak * fraction).astype(np.float32)
        safe = np.where(scale > 0, scale, np.float32(1))
        restored = np.clip(np.rint(table / safe), -INT4_LEVELS, INT4_LEVELS) * safe
        error = ((restored - table) ** 2).sum(axis=1, keepdims=True)
        better = error < best_error
        best = np.where(better, scale, best)
        best_error = np.where(better, error, best_error)
    scales: F32 = best.astype(np.float32)
    return scales


def unpack_int4(table: PackedTable) -> F32:
    """The fp32 table a packed one stands for (what the graph's lookup computes)."""
    low = (table.nibbles & 0x0F).astype(np.int8) - 8
    high = (table.nibbles >> 4).astype(np.int8) - 8
    codes = np.stack([low, high], axis=2).reshape(table.nibbles.shape[0], -1)
    result: F32 = (codes.astype(np.float32) * table.scales).astype(np.float32)
    return result


def _dynamic(model_bytes: bytes, op_types: list[str]) -> bytes:
    marked = with_metadata(model_bytes, {_PRE_PROCESSED: "onnxruntime.quant"})
    # quantize_dynamic writes a file (and itself round-trips through a temp dir for shape
    # inference); the directory is private and gone when this returns.
    with tempfile.TemporaryDirectory(prefix="fleetserve-quant-") as tmp:
        target = Path(tmp) / "model.int8.onnx"
        quantize_dynamic(
            onnx.load_from_string(marked),
            target,
            op_types_to_quantize=op_types,
            # Shape inference stops at the contrib lookup; everything after it is fp32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            weight_type=QuantType.QInt8,
            per_channel=False,
            # Both of the pooling MatMul's inputs come from the call; quantizing them on
            # the fly would cost a pass over [B, L, D] and precision for no bytes.
            nodes_to_exclude=[POOL_NODE],
        )
        quantized = target.read_bytes()
    return without_metadata(quantized, _QUANTIZER_KEYS)
