"""Training, ONNX export and int8/int4 quantization, each against real numpy and onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from fleetserve.errors import ConfigError
from fleetserve.models.evaluate import run_all
from fleetserve.models.featurize import Features, FeaturizerSpec, featurize, featurize_padded
from fleetserve.models.graph import OPSET, export_onnx, with_metadata
from fleetserve.models.quantize import pack_int4, quantize_int4, quantize_int8, unpack_int4
from fleetserve.models.runtime import new_session, predict
from fleetserve.models.train import ModelWeights, TrainParams, forward, train

SPEC = FeaturizerSpec(buckets=1024, char_ngram_min=2, char_ngram_max=4)
TOPICS = {
    "weather": ["rain", "sunny", "forecast", "umbrella", "cloudy", "snow"],
    "music": ["song", "playlist", "guitar", "album", "jazz", "volume"],
    "날씨": ["비", "맑음", "기온", "우산", "흐림", "눈"],
}


def toy_set() -> tuple[list[str], np.ndarray]:
    """Linearly separable: each intent has its own keywords in shared filler."""
    texts, labels = [], []
    fillers = ["please tell me about", "i want", "what about the", "can you check"]
    for label, (_, words) in enumerate(TOPICS.items()):
        for i, word in enumerate(words):
            for filler in fillers:
                texts.append(f"{filler} {word} {words[(i + 1) % len(words)]}")
                labels.append(label)
    return texts, np.array(labels, np.int64)


@pytest.fixture(scope="module")
def trained() -> tuple[Features, np.ndarray, ModelWeights]:
    texts, labels = toy_set()
    features = featurize(SPEC, texts)
    weights = train(features, labels, len(TOPICS), SPEC.buckets, TrainParams(dim=16), seed=0)
    return features, labels, weights


def test_training_learns_a_separable_set(
    trained: tuple[Features, np.ndarray, ModelWeights],
) -> None:
    features, labels, weights = trained
    probs = forward(weights, features)
    assert (probs.argmax(axis=1) == labels).all()
    assert probs.sum(axis=1) == pytest.approx(np.ones(labels.size), abs=1e-5)


def test_training_is_deterministic_and_seeded() -> None:
    texts, labels = toy_set()
    features = featurize(SPEC, texts)
    params = TrainParams(dim=8, epochs=3)
    a = train(features, labels, 3, SPEC.buckets, params, seed=1)
    b = train(features, labels, 3, SPEC.buckets, params, seed=1)
    c = train(features, labels, 3, SPEC.buckets, params, seed=2)
    assert np.array_equal(a.table, b.table)
    assert np.array_equal(a.head, b.head)
    assert not np.array_equal(a.table, c.table)


def test_rows_no_training_text_touches_are_zero(
    trained: tuple[Features, np.ndarray, ModelWeights],
) -> None:
    features, _, weights = trained
    unseen = np.ones(SPEC.buckets, bool)
    unseen[features.ids] = False
    assert unseen.any()
    assert not weights.table[unseen].any()
    assert weights.table[~unseen].any()


def test_dropout_and_label_smoothing_still_learn() -> None:
    texts, labels = toy_set()
    features = featurize(SPEC, texts)
    params = TrainParams(dim=16, dropout=0.3, label_smoothing=0.1, activation="none")
    weights = train(features, labels, 3, SPEC.buckets, params, seed=0)
    assert (forward(weights, features).argmax(axis=1) == labels).mean() > 0.95


def test_schedule_scales_with_the_data() -> None:
    assert TrainParams().schedule(150) == (13, 12)
    assert TrainParams().schedule(400) == (5, 25)
    assert TrainParams().schedule(15000) == (5, 64)  # at least MIN_EPOCHS
    assert TrainParams().schedule(7000, n_classes=1000) == (14, 64)  # 7 per intent
    assert TrainParams(epochs=2, batch_size=7).schedule(150) == (2, 7)
    with pytest.raises(ConfigError):
        TrainParams(dropout=1.0)
    with pytest.raises(ConfigError):
        TrainParams(optimizer="sgd")  # type: ignore[arg-type]


@pytest.mark.parametrize("optimizer", ["rowwise", "adam"])
def test_both_table_optimizers_learn(optimizer: str) -> None:
    texts, labels = toy_set()
    features = featurize(SPEC, texts)
    params = TrainParams(dim=16, optimizer=optimizer)  # type: ignore[arg-type]
    weights = train(features, labels, 3, SPEC.buckets, params, seed=0)
    assert (forward(weights, features).argmax(axis=1) == labels).mean() > 0.95


def test_soft_targets_pull_the_model_towards_the_teacher() -> None:
    texts, labels = toy_set()
    features = featurize(SPEC, texts)
    teacher = np.zeros((labels.size, 3), np.float32)
    teacher[:, 0] = 1.0  # a teacher that always says class 0
    params = TrainParams(dim=16, distill_weight=1.0)
    weights = train(features, labels, 3, SPEC.buckets, params, seed=0, soft_targets=teacher)
    assert (forward(weights, features).argmax(axis=1) == 0).mean() > 0.9


@pytest.mark.parametrize("activation", ["tanh", "none"])
def test_onnx_export_matches_the_numpy_forward_pass(activation: str) -> None:
    texts, labels = toy_set()
    features = featurize(SPEC, texts)
    params = TrainParams(dim=16, activation=activation)  # type: ignore[arg-type]
    weights = train(features, labels, 3, SPEC.buckets, params, seed=0)
    model = export_onnx(weights, {"k": "v"})
    proto = onnx.load_from_string(model)
    assert proto.opset_import[0].version == OPSET
    assert {p.key: p.value for p in proto.metadata_props} == {"k": "v"}
    session = new_session(model)
    queries = [*texts[:5], "", "a text the model has never seen, 처음 보는 문장"]
    np.testing.assert_allclose(
        predict(session, SPEC, queries), forward(weights, featurize(SPEC, queries)), atol=1e-5
    )


def test_int8_is_smaller_and_close(trained: tuple[Features, np.ndarray, ModelWeights]) -> None:
    _, labels, weights = trained
    fp32 = export_onnx(weights, {"fleetserve.labels": "[]"})
    int8 = quantize_int8(fp32)
    assert len(int8) < len(fp32) / 3
    ops = {node.op_type for node in onnx.load_from_string(int8).graph.node}
    assert {"MatMulInteger", "DequantizeLinear"} <= ops
    keys = {p.key for p in onnx.load_from_string(int8).metadata_props}
    assert keys == {"fleetserve.labels"}  # the quantizer's own entries are gone
    texts, _ = toy_set()
    ids, w = featurize_padded(SPEC, texts)
    (probs,) = new_session(int8).run(None, {"ids": ids, "weights": w})
    assert (probs.argmax(axis=1) == labels).all()
    assert quantize_int8(fp32) == int8  # deterministic


def test_int4_rows_keep_their_own_scale_and_the_least_error() -> None:
    rng = np.random.default_rng(3)
    # Rows a thousand times apart in magnitude, as a hashed table's are.
    table = (rng.normal(size=(64, 12)) * np.logspace(-3, 0, 64)[:, None]).astype(np.float32)
    table[5] = 0.0
    packed = pack_int4(table)
    assert packed.nibbles.shape == (64, 6)
    assert packed.nibbles.dtype == np.uint8
    restored = unpack_int4(packed)
    step = np.abs(table).max(axis=1, keepdims=True) / 7
    # Each row's scale is its own, and never worse than rounding to its peak's steps.
    peak_scaled = np.clip(np.rint(table / np.where(step > 0, step, 1)), -7, 7) * step
    error = ((restored - table) ** 2).sum(axis=1)
    assert (error <= ((peak_scaled - table) ** 2).sum(axis=1) + 1e-9).all()
    assert (restored[5] == 0).all()
    with pytest.raises(ValueError, match="even width"):
        pack_int4(table[:, :11])


@pytest.mark.parametrize("dim", [16, 15])
def test_int4_graph_computes_the_unpacked_table(dim: int) -> None:
    """The 4-bit lookup is the table :func:`unpack_int4` gives (the head adds int8 rounding);
    an odd width is padded with a zero column and a zero head row."""
    texts, labels = toy_set()
    features = featurize(SPEC, texts)
    weights = train(features, labels, 3, SPEC.buckets, TrainParams(dim=dim), seed=0)
    int4 = quantize_int4(weights, {"fleetserve.labels": "[]"})
    int8 = quantize_int8(export_onnx(weights, {"fleetserve.labels": "[]"}))
    # A row is 8 bytes of codes and a 4-byte scale at widths 15 and 16, against a byte per
    # weight for int8: 3 or 4 bytes saved per row, less a few hundred for the graph.
    saved_per_row = dim - (dim + 1) // 2 - 4
    assert len(int4) < len(int8) - 0.9 * SPEC.buckets * saved_per_row
    proto = onnx.load_from_string(int4)
    assert {p.key for p in proto.metadata_props} == {"fleetserve.labels"}
    lookup = next(n for n in proto.graph.node if n.name == "lookup")
    assert (lookup.domain, lookup.op_type) == ("com.microsoft", "GatherBlockQuantized")
    even = weights.table if dim % 2 == 0 else np.pad(weights.table, ((0, 0), (0, 1)))
    head = weights.head if dim % 2 == 0 else np.pad(weights.head, ((0, 1), (0, 0)))
    unpacked = ModelWeights(unpack_int4(pack_int4(even)), head, weights.bias, weights.activation)
    queries = [*texts[:8], "", "a text the model has never seen, 처음 보는 문장"]
    session = new_session(int4)
    np.testing.assert_allclose(
        predict(session, SPEC, queries), forward(unpacked, featurize(SPEC, queries)), atol=0.02
    )
    assert (predict(session, SPEC, texts).argmax(axis=1) == labels).all()
    assert quantize_int4(weights, {"fleetserve.labels": "[]"}) == int4  # deterministic


def test_metadata_can_be_replaced_without_touching_weights(
    trained: tuple[Features, np.ndarray, ModelWeights],
) -> None:
    _, _, weights = trained
    model = export_onnx(weights, {"a": "1", "b": "2"})
    updated = onnx.load_from_string(with_metadata(model, {"b": "3", "c": "4"}))
    assert {p.key: p.value for p in updated.metadata_props} == {"a": "1", "b": "3", "c": "4"}
    assert updated.graph == onnx.load_from_string(model).graph


def test_length_sorted_chunks_give_the_same_probabilities(
    trained: tuple[Features, np.ndarray, ModelWeights],
) -> None:
    _, _, weights = trained
    session = new_session(export_onnx(weights, {}))
    texts = [("rain " * (i % 7)) + f"song {i}" for i in range(150)] + [""]
    expected = predict(session, SPEC, texts)
    np.testing.assert_allclose(
        run_all(session, featurize(SPEC, texts), chunk=16), expected, atol=1e-6
    )
