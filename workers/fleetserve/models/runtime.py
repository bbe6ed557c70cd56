"""Serving helpers: a dense-friendly onnxruntime session and text-in, probabilities-out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]

from fleetserve.models.featurize import FeaturizerSpec, featurize_padded
from fleetserve.models.metadata import ModelMetadata, is_optimized, read_model_metadata
from fleetserve.models.signature import INPUT_IDS, INPUT_WEIGHTS, OUTPUT_PROBS

__all__ = [
    "InferenceSession",
    "ModelMetadata",
    "new_session",
    "optimizing_session",
    "predict",
    "predict_padded",
    "read_model_metadata",
    "session_options",
]

# onnxruntime ships no type information; this alias is the one place it enters the types.
InferenceSession: TypeAlias = ort.InferenceSession


def session_options(
    level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
) -> ort.SessionOptions:
    """Options for thousands of small sessions in one process.

    One thread and sequential execution: the worker parallelizes across bots, not inside a
    30 us run, and a per-session pool would cost threads per model. The CPU arena and the
    memory-pattern planner both keep buffers sized for the largest batch seen alive for the
    session's lifetime; at 10,000 sessions that memory outweighs the few microseconds they
    save (measured in bench/components/clinc_bench.py: resident bytes per session).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    options.graph_optimization_level = level
    options.log_severity_level = 3
    return options


def new_session(model_bytes: bytes) -> InferenceSession:
    """A session for a model file; one the builder optimized skips the optimizer
    (``models/optimize.py``: 43 KB less resident per session)."""
    level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if is_optimized(model_bytes)
        else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    return ort.InferenceSession(
        model_bytes, sess_options=session_options(level), providers=["CPUExecutionProvider"]
    )


def optimizing_session(model_bytes: bytes, target: Path) -> InferenceSession:
    """A session that writes the graph it optimized to ``target`` (see ``models/optimize.py``)."""
    options = session_options(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    options.optimized_model_filepath = str(target)
    return ort.InferenceSession(
        model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
    )


def predict(
    session: InferenceSession, spec: FeaturizerSpec, texts: Sequence[str]
) -> npt.NDArray[np.float32]:
    """[len(texts), classes] probabilities; featurized exactly as at build time."""
    ids, weights = featurize_padded(spec, texts)
    (probs,) = session.run([OUTPUT_PROBS], {INPUT_IDS: ids, INPUT_WEIGHTS: weights})
    result: npt.NDArray[np.float32] = probs
    return result


def predict_padded(
    session: InferenceSession, ids: npt.NDArray[np.int64], weights: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """[texts, classes] probabilities of texts already featurized and padded (``to_padded``)."""
    (probs,) = session.run([OUTPUT_PROBS], {INPUT_IDS: ids, INPUT_WEIGHTS: weights})
    result: npt.NDArray[np.float32] = probs
    return result
