"""Trained weights to a self-describing ONNX file built with ``onnx.helper`` (standard ops only).

::

    ids [B, L] int64 ──Gather(table)──> [B, L, D] ──Mul(Unsqueeze(weights, 2))──>
    ReduceSum(axis 1) ──> [B, D] ──Tanh──> MatMul(head) ──Add(bias)──> Softmax ──> probs [B, C]

Labels, the fallback threshold and the featurizer spec ride in ``metadata_props`` so a model
file alone is enough to serve it (see :mod:`fleetserve.models.metadata`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fleetserve.models.signature import INPUT_IDS, INPUT_WEIGHTS, OUTPUT_PROBS
from fleetserve.models.train import ModelWeights

OPSET = 17
# IR 8 is what onnxruntime releases since 1.14 load; newer IRs add nothing this graph uses.
IR_VERSION = 8


def export_onnx(weights: ModelWeights, metadata: Mapping[str, str]) -> bytes:
    """Serialize the model; the same weights and metadata always give the same bytes."""
    model = helper.make_model(
        _graph(weights),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="fleetserve",
        ir_version=IR_VERSION,
    )
    helper.set_model_props(model, dict(metadata))
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def with_metadata(model_bytes: bytes, updates: Mapping[str, str]) -> bytes:
    """The same model with some metadata entries replaced or added."""
    model = onnx.load_from_string(model_bytes)
    props = {p.key: p.value for p in model.metadata_props}
    props.update(updates)
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    return bytes(model.SerializeToString())


def without_metadata(model_bytes: bytes, keys: set[str]) -> bytes:
    model = onnx.load_from_string(model_bytes)
    props = {p.key: p.value for p in model.metadata_props if p.key not in keys}
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    return bytes(model.SerializeToString())


def _graph(weights: ModelWeights) -> onnx.GraphProto:
    hidden = "pooled"
    nodes = [
        helper.make_node("Gather", ["table", INPUT_IDS], ["rows"], name="lookup"),
        helper.make_node("Unsqueeze", [INPUT_WEIGHTS, "axis_2"], ["weights_3d"], name="expand"),
        helper.make_node("Mul", ["rows", "weights_3d"], ["weighted"], name="weigh"),
        helper.make_node("ReduceSum", ["weighted", "axis_1"], ["pooled"], keepdims=0, name="pool"),
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
        numpy_helper.from_array(np.ascontiguousarray(weights.table, np.float32), "table"),
        numpy_helper.from_array(np.ascontiguousarray(weights.head, np.float32), "head"),
        numpy_helper.from_array(np.ascontiguousarray(weights.bias, np.float32), "bias"),
        numpy_helper.from_array(np.array([1], np.int64), "axis_1"),
        numpy_helper.from_array(np.array([2], np.int64), "axis_2"),
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
