"""Build-time graph optimization: the shipped graph is onnxruntime's own, loads without the
optimizer, needs only the domains it uses and answers exactly as the unoptimized file."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]
import pytest

from fleetserve.cache.onnx_guard import check_model_bytes
from fleetserve.models.featurize import FeaturizerSpec, featurize, featurize_padded
from fleetserve.models.graph import export_onnx
from fleetserve.models.metadata import KEY_OPTIMIZED, is_optimized
from fleetserve.models.optimize import optimized_session, stamp_optimized
from fleetserve.models.pipeline import BuildOptions, build_model
from fleetserve.models.quantize import quantize_int4, quantize_int8
from fleetserve.models.runtime import new_session
from fleetserve.models.train import ModelWeights, TrainParams, train

SPEC = FeaturizerSpec(buckets=512, char_ngram_min=2, char_ngram_max=4)
TEXTS = [f"{w} please {v}" for w in ("rain", "song", "train") for v in ("now", "later", "today")]
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2], np.int64)


@pytest.fixture(scope="module")
def weights() -> ModelWeights:
    return train(featurize(SPEC, TEXTS), LABELS, 3, SPEC.buckets, TrainParams(dim=16), seed=0)


def level(session: ort.InferenceSession) -> ort.GraphOptimizationLevel:
    return session.get_session_options().graph_optimization_level


@pytest.mark.parametrize("table", ["int8", "int4"])
def test_the_optimized_graph_answers_as_the_raw_one(weights: ModelWeights, table: str) -> None:
    meta = {"fleetserve.labels": "[]"}
    raw = (
        quantize_int4(weights, meta)
        if table == "int4"
        else quantize_int8(export_onnx(weights, meta))
    )
    session, shipped = optimized_session(raw)
    assert is_optimized(shipped)
    assert not is_optimized(raw)
    model = onnx.load_from_string(shipped)
    # onnxruntime's file imports every domain it knows; the shipped one only what it runs.
    assert {o.domain for o in model.opset_import} == {n.domain for n in model.graph.node} | {""}
    assert {p.key for p in model.metadata_props} == {"fleetserve.labels", KEY_OPTIMIZED}
    check_model_bytes(shipped)
    served, unoptimized = new_session(shipped), new_session(raw)
    assert level(served) == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert level(unoptimized) == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    ids, w = featurize_padded(SPEC, [*TEXTS, "", "never seen, 처음 보는 문장"])
    feeds = {"ids": ids, "weights": w}
    (expected,) = unoptimized.run(None, feeds)
    for candidate in (served, session):
        np.testing.assert_array_equal(candidate.run(None, feeds)[0], expected)


def test_an_int8_graph_ships_with_its_head_fused(weights: ModelWeights) -> None:
    _, shipped = optimized_session(quantize_int8(export_onnx(weights, {})))
    ops = {(n.domain, n.op_type) for n in onnx.load_from_string(shipped).graph.node}
    assert ("com.microsoft", "DynamicQuantizeMatMul") in ops
    assert ("", "MatMulInteger") not in ops


def test_stamping_keeps_used_domains_and_existing_metadata(weights: ModelWeights) -> None:
    model = onnx.load_from_string(quantize_int8(export_onnx(weights, {"a": "1"})))
    model.opset_import.add(domain="com.microsoft.nchwc", version=1)
    stamped = onnx.load_from_string(stamp_optimized(model.SerializeToString()))
    assert [o.domain for o in stamped.opset_import] == [""]
    assert {p.key: p.value for p in stamped.metadata_props}["a"] == "1"


def test_built_bots_ship_optimized_graphs_and_fp32_fallbacks_do_not() -> None:
    pairs = [(t, f"intent{label}") for t, label in zip(TEXTS * 4, np.tile(LABELS, 4), strict=True)]
    built = build_model(pairs, options=BuildOptions())
    assert built.quantization == "int8"
    assert is_optimized(built.model_bytes)
    fallback = build_model(pairs, options=BuildOptions(tolerance_points=-100.0))
    assert fallback.quantization == "fp32"
    assert not is_optimized(fallback.model_bytes)
