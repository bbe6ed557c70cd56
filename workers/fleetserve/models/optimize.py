"""Build-time graph optimization: ship the graph onnxruntime would otherwise build at every load.

A session whose optimizer runs at load keeps the optimizer's transformers for its whole
life and pays for the optimization on every cold load. Measured on the 10,000 bench-fleet
snapshots (143 KB mean, onnxruntime 1.32, ``bench/components/session_memory_bench.py --bots
10000``): the shipped graph with the optimizer off keeps 224.7 KB per session and builds in
1.01 ms (p50), with the optimizer at load 267.4 KB and 1.22 ms. Against the unoptimized
files of the previous recipe (a one-off A/B): 222 against 273 KB, and a session built in
1.18 instead of 2.11 ms (p50). Calls cost the same.

The level is ``ORT_ENABLE_EXTENDED``: the CPU provider's fusions (here the int8 head's
quantize, MatMulInteger, Cast and Mul become one ``com.microsoft.DynamicQuantizeMatMul``).
``ORT_ENABLE_ALL`` adds layout transforms that onnxruntime itself calls specific to the
machine that ran them; a snapshot is served on any machine.

The saved file imports every domain onnxruntime knows; only the ones its nodes use are kept,
so the loader's domain check (``cache/onnx_guard.py``) reads what the graph needs. The file
is stamped ``fleetserve.optimized`` so a session for it skips the optimizer; a snapshot
without the stamp (an fp32 fallback, older recipes) is optimized at load as before.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

from fleetserve.models.graph import update_metadata
from fleetserve.models.metadata import KEY_OPTIMIZED
from fleetserve.models.runtime import InferenceSession, optimizing_session

__all__ = ["OPTIMIZED_BY", "optimized_session", "stamp_optimized"]

# The stamp's value: which optimizer, at which level (documentation; any value means "done").
OPTIMIZED_BY = "onnxruntime ORT_ENABLE_EXTENDED"


def optimized_session(model_bytes: bytes) -> tuple[InferenceSession, bytes]:
    """A session for ``model_bytes`` and the optimized graph it runs, ready to ship.

    One session does both: onnxruntime writes the graph it optimized while building it, so
    the gate measures the session whose graph is published, for no extra session.
    """
    with tempfile.TemporaryDirectory(prefix="fleetserve-optimize-") as tmp:
        target = Path(tmp) / "optimized.onnx"
        session = optimizing_session(model_bytes, target)
        saved = target.read_bytes()
    return session, stamp_optimized(saved)


def stamp_optimized(saved: bytes) -> bytes:
    """onnxruntime's saved graph with only the opsets its nodes use, stamped as optimized."""
    model = onnx.load_from_string(saved)
    used = {node.domain for node in model.graph.node} | {""}
    kept = [opset for opset in model.opset_import if opset.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    update_metadata(model, {KEY_OPTIMIZED: OPTIMIZED_BY})
    return bytes(model.SerializeToString())
