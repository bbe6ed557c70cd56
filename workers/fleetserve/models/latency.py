"""Measured serving latency of trained weights: exported to ONNX and run as a worker would."""

from __future__ import annotations

from collections.abc import Sequence

from fleetserve.models.evaluate import latency_us
from fleetserve.models.featurize import FeaturizerSpec
from fleetserve.models.graph import export_onnx
from fleetserve.models.metadata import encode_metadata
from fleetserve.models.runtime import new_session
from fleetserve.models.train import ModelWeights


def weights_latency_us(weights: ModelWeights, spec: FeaturizerSpec, texts: Sequence[str]) -> float:
    """Median batch-1 ``session.run`` time of the fp32 export (featurizing excluded)."""
    labels = [f"c{i}" for i in range(weights.n_classes)]
    session = new_session(export_onnx(weights, encode_metadata(labels, 0.0, spec, {})))
    return latency_us(session, spec, list(texts)[:64] or ["x"], batch=1, repeats=9)
