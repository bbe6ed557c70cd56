"""Trained weights to a self-describing ONNX file built with ``onnx.helper`` (standard ops only).

::

    ids [B, L] int64 ──Gather(table)──> [B, L, D] ──MatMul(Unsqueeze(weights, 1) [B, 1, L], ·)──>
    Squeeze(axis 1) ──> [B, D] ──Tanh──> MatMul(head) ──Add(bias)──> Softmax ──> probs [B, C]

The weighted sum over a text's n-grams is one batched MatMul, not Mul then ReduceSum: those
two materialize the [B, L, D] product and walk it again. On the 40-bot bench fleet's int8
models (onnxruntime 1.32, CPU per call, 600 repeats) a call took 24.2 -> 16.2 us for one
row, 50.5 -> 33.9 us for 4 and 397 -> 178 us for 32 (``bench/components/ort_call_bench.py``,
``pooling_cpu_us_per_call`` in ``bench/results/ort_call.json``).

Labels, the fallback threshold and the featurizer spec ride in ``metadata_props`` so a model
file alone is enough to serve it (see :mod:`fleetserve.models.metadata`).

A 4-bit table (:class:`PackedTable`) replaces the Gather with onnxruntime's
``com.microsoft.GatherBlockQuantized``: two weights per byte, low nibble first, stored plus
8, times one fp32 scale per row (a single block as wide as the row). Its output is the fp32
rows, so everything after the lookup is the same graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from fleetserve.models.signature import INPUT_IDS, INPUT_WEIGHTS, OUTPUT_PROBS
from fleetserve.models.train import ModelWeights

OPSET = 17
CONTRIB_DOMAIN = "com.microsoft"
# IR 8 is what onnxruntime releases since 1.14 load; newer IRs add nothing this graph uses.
IR_VERSION = 8
# The pooling MatMul multiplies two inputs of the call: quantizers must leave it alone.
POOL_NODE = "pool"


@dataclass(frozen=True)
class PackedTable:
    """A 4-bit table: ``nibbles`` [buckets, dim / 2] uint8, ``scales`` [buckets, 1]."""

    nibbles: npt.NDArray[np.uint8]
    scales: npt.NDArray[np.float32]

    @property
    def dim(self) -> int:
        return 2 * int(self.nibbles.shape[1])


def export_onnx(
    weights: ModelWeights, metadata: Mapping[str, str], table: PackedTable | None = None
) -> bytes:
    """Serialize the model; the same weights and metadata always give the same bytes.

    ``table``: store this 4-bit table instead of ``weights.table``.
    """
    opsets = [helper.make_opsetid("", OPSET)]
    if table is not None:
        opsets.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))
    model = helper.make_model(
        _graph(weights, table),
        opset_imports=opsets,
        producer_name="fleetserve",
        ir_version=IR_VERSION,
    )
    helper.set_model_props(model, dict(metadata))
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def with_metadata(model_bytes: bytes, updates: Mapping[str, str]) -> bytes:
    """The same model with some metadata entries replaced or added."""
    model = onnx.load_from_string(model_bytes)
    update_metadata(model, updates)
    return bytes(model.SerializeToString())


def update_metadata(model: onnx.ModelProto, updates: Mapping[str, str]) -> None:
    """Replace or add ``model``'s metadata entries ``updates`` in place."""
    props = {p.key: p.value for p in model.metadata_props}
    props.update(updates)
    del model.metadata_props[:]
    helper.set_model_props(model, props)


def without_metadata(model_bytes: bytes, keys: set[str]) -> bytes:
    model = onnx.load_from_string(model_bytes)
    props = {p.key: p.value for p in model.metadata_props if p.key not in keys}
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    return bytes(model.SerializeToString())


def _lookup(weights: ModelWeights, table: PackedTable | None) -> tuple[Any, list[Any]]:
    if table is None:
        node = helper.make_node("Gather", ["table", INPUT_IDS], ["rows"], name="lookup")
        stored = np.ascontiguousarray(weights.table, np.float32)
        return node, [numpy_helper.from_array(stored, "table")]
    node = helper.make_node(
        "GatherBlockQuantized",
        ["table", INPUT_IDS, "table_scales"],
        ["rows"],
        name="lookup",
        domain=CONTRIB_DOMAIN,
        gather_axis=0,
        quantize_axis=1,
        block_size=block_size(table.dim),
        bits=4,
    )
    return node, [
        numpy_helper.from_array(np.ascontiguousarray(table.nibbles), "table"),
        numpy_helper.from_array(np.ascontiguousarray(table.scales, np.float32), "table_scales"),
    ]


def block_size(dim: int) -> int:
    """One quantization block per row: the operator takes powers of two from 16 up."""
    return max(16, 1 << (dim - 1).bit_length())


def _graph(weights: ModelWeights, table: PackedTable | None) -> onnx.GraphProto:
    hidden = "pooled"
    lookup, table_initializers = _lookup(weights, table)
    nodes = [
        lookup,
        helper.make_node("Unsqueeze", [INPUT_WEIGHTS, "axis_1"], ["weights_row"], name="expand"),
        helper.make_node("MatMul", ["weights_row", "rows"], ["pooled_row"], name=POOL_NODE),
        helper.make_node("Squeeze", ["pooled_row", "axis_1"], ["pooled"], name="flatten"),
    ]
    if weights.activation == "tanh":
        nodes.append(helper.make_node("Tanh", ["pooled"], ["hidden"], name="activate"))
        hidden = "hidden"
    nodes += [
        helper.make_node("MatMul", [hidden, "head"], ["scores"], name="project"),
        helper.make_node("Add", ["scores", "bias"], ["logits"], name="shift"),
        helper.make_node("Softmax", ["logits"], [OUTPUT_PROBS], axis=-1, name="normalize"),
    ]
    initializers = [
        *table_initializers,
        numpy_helper.from_array(np.ascontiguousarray(weights.head, np.float32), "head"),
        numpy_helper.from_array(np.ascontiguousarray(weights.bias, np.float32), "bias"),
        numpy_helper.from_array(np.array([1], np.int64), "axis_1"),
    ]
    return helper.make_graph(
        nodes,
        "fleetserve_intent",
        inputs=[
            helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, ["batch", "length"]),
            helper.make_tensor_value_info(INPUT_WEIGHTS, TensorProto.FLOAT, ["batch", "length"]),
        ],
        outputs=[
            helper.make_tensor_value_info(
                OUTPUT_PROBS, TensorProto.FLOAT, ["batch", weights.n_classes]
            )
        ],
        initializer=initializers,
    )
