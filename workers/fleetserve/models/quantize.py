"""fp32 model bytes to int8 with onnxruntime's dynamic quantization (Gather and MatMul)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
from onnxruntime.quantization import (  # type: ignore[import-untyped]
    QuantType,
    quantize_dynamic,
)

from fleetserve.models.graph import with_metadata, without_metadata

# The quantizer warns on the root logger, once per model, unless the model carries the
# marker its pre-processing step (symbolic shape inference + graph optimization) leaves.
# Our graphs come from graph.py already minimal with static ranks, so that step has nothing
# to do; the marker only keeps 10,000 builds from printing 10,000 warnings. It and the
# quantizer's own "onnx.infer" entry are removed from the result.
_PRE_PROCESSED = "onnx.quant.pre_process"
_QUANTIZER_KEYS = {_PRE_PROCESSED, "onnx.infer"}


def quantize_int8(model_bytes: bytes) -> bytes:
    """Weights of Gather and MatMul as int8; activations quantized on the fly (uint8)."""
    marked = with_metadata(model_bytes, {_PRE_PROCESSED: "onnxruntime.quant"})
    # quantize_dynamic writes a file (and itself round-trips through a temp dir for shape
    # inference); the directory is private and gone when this returns.
    with tempfile.TemporaryDirectory(prefix="fleetserve-quant-") as tmp:
        target = Path(tmp) / "model.int8.onnx"
        quantize_dynamic(
            onnx.load_from_string(marked),
            target,
            op_types_to_quantize=["Gather", "MatMul"],
            weight_type=QuantType.QInt8,
            per_channel=False,
        )
        quantized = target.read_bytes()
    return without_metadata(quantized, _QUANTIZER_KEYS)
