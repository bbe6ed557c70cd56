"""build_model end to end: gate, calibration, metadata, determinism, search, bad input."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from fleetserve.errors import BotInputError, ConfigError
from fleetserve.models.featurize import FeaturizerSpec, featurize
from fleetserve.models.pipeline import BuiltModel, build_model, split_for_build
from fleetserve.models.runtime import new_session, predict, read_model_metadata

TEMPLATES = {
    "weather": ["what's the weather in {}", "will it rain in {} tomorrow", "forecast for {}"],
    "alarm": ["set an alarm for {} am", "wake me up at {}", "alarm at {} please"],
    "music": ["play some {} music", "put on a {} playlist", "i want to hear {} songs"],
    "날씨": ["{} 날씨 어때", "{} 내일 비 와?", "{} 기온 알려줘"],
}
SLOTS = ["paris", "seoul", "7", "jazz", "rock", "부산", "서울", "8", "tokyo", "pop", "6", "대구"]
OOS = ["how do i bake bread", "tell me a joke", "what is the capital of peru", "who won the game"]


def toy_bot(seed: int = 0) -> list[tuple[str, str]]:
    pairs = [(t.format(s), i) for i, ts in TEMPLATES.items() for t in ts for s in SLOTS]
    return [pairs[i] for i in np.random.default_rng(seed).permutation(len(pairs))]


@pytest.fixture(scope="module")
def built() -> BuiltModel:
    train, val, test = split_for_build(toy_bot())
    return build_model(train, val, test, oos_val=OOS[:2], oos_test=OOS[2:])


def test_a_normal_bot_passes_the_gate_and_publishes_int8(built: BuiltModel) -> None:
    assert built.quantization == "int8"
    assert built.gate["passed"] is True
    assert built.gate["published"] == "int8"
    assert built.gate["tolerance_points"] == 0.5
    assert "within" in built.gate["reason"]
    metrics = built.metrics
    assert metrics["accuracy_int8"] >= metrics["accuracy_fp32"] - 0.5
    assert metrics["accuracy_fp32"] > 90
    assert metrics["int8_delta_points"] == pytest.approx(
        metrics["accuracy_int8"] - metrics["accuracy_fp32"]
    )
    # The published file is the quantized one with the calibrated threshold written in.
    assert abs(len(built.model_bytes) - metrics["model_bytes_int8"]) < 64
    assert metrics["model_bytes_int8"] < metrics["model_bytes_fp32"] / 3
    assert metrics["search_trials"] == 0
    assert metrics["latency_us_batch1"] > 0
    assert metrics["fallback_recall"] is not None
    json.dumps(dict(metrics))  # the manifest stores it as JSON


def test_a_failed_gate_publishes_fp32_with_a_reason() -> None:
    train, val, test = split_for_build(toy_bot())
    built = build_model(train, val, test, int8_tolerance_points=-100.0)
    assert built.quantization == "fp32"
    assert built.gate["passed"] is False
    assert built.gate["published"] == "fp32"
    assert "outside the -100-point tolerance" in built.gate["reason"]
    ops = {node.op_type for node in onnx.load_from_string(built.model_bytes).graph.node}
    assert "MatMulInteger" not in ops
    assert len(built.model_bytes) > built.metrics["model_bytes_int8"]


def test_the_file_describes_itself(built: BuiltModel) -> None:
    for source in (built.model_bytes, new_session(built.model_bytes)):
        meta = read_model_metadata(source)
        assert meta.labels == built.labels == tuple(sorted(TEMPLATES))
        assert meta.fallback_threshold == built.fallback_threshold
        assert meta.featurizer.to_dict() == dict(built.featurizer)
        assert meta.params["dim"] == built.params["dim"]


def test_served_predictions_use_the_build_time_featurizer(built: BuiltModel) -> None:
    session = new_session(built.model_bytes)
    meta = read_model_metadata(session)
    texts = ["what's the weather in rome", "부산 날씨 어때", "play some jazz music", ""]
    ids_at_build = featurize(FeaturizerSpec.from_dict(built.featurizer), texts)
    ids_at_serve = featurize(meta.featurizer, texts)
    assert np.array_equal(ids_at_build.ids, ids_at_serve.ids)
    probs = predict(session, meta.featurizer, texts)
    assert [meta.labels[i] for i in probs[:3].argmax(axis=1)] == ["weather", "날씨", "music"]


def test_out_of_scope_queries_fall_back(built: BuiltModel) -> None:
    assert 0.0 < built.fallback_threshold < 1.0
    session = new_session(built.model_bytes)
    meta = read_model_metadata(session)
    in_scope = predict(session, meta.featurizer, ["set an alarm for 9 am"]).max()
    assert in_scope >= built.fallback_threshold


def test_same_inputs_same_bytes() -> None:
    train, val, test = split_for_build(toy_bot(), seed=1)
    a = build_model(train, val, test, seed=5)
    b = build_model(train, val, test, seed=5)
    assert a.model_bytes == b.model_bytes
    assert a.fallback_threshold == b.fallback_threshold


def test_without_oos_the_threshold_comes_from_in_scope_confidences() -> None:
    train, val, test = split_for_build(toy_bot())
    built = build_model(train, val, test)
    assert built.metrics["calibration_source"] == "in_scope_quantile"
    assert built.metrics["fallback_precision"] is None
    assert built.metrics["fallback_recall"] is None


def test_search_records_its_trials_and_respects_the_size_cap() -> None:
    train, val, test = split_for_build(toy_bot())
    built = build_model(
        train, val, test, search_budget_s=3.0, base_params={"dim": 16, "max_model_kb": 64}
    )
    trials = built.params["trials"]
    assert built.metrics["search_trials"] == len(trials) > 1
    for trial in trials:
        assert trial["params"]["buckets"] * trial["params"]["dim"] <= 64 * 1024
    best = max(t["val_accuracy"] for t in trials)
    assert built.metrics["val_accuracy"] == best


def test_base_params_override_defaults_and_typos_are_refused() -> None:
    train, val, test = split_for_build(toy_bot())
    built = build_model(train, val, test, base_params={"buckets": 512, "dim": 8, "epochs": 3})
    assert built.featurizer["buckets"] == 512
    assert (built.params["dim"], built.params["epochs"]) == (8, 3)
    with pytest.raises(ConfigError):
        build_model(train, val, test, base_params={"dims": 8})


def test_tiny_bots_build_even_without_holdout_data() -> None:
    pairs = [("turn on the light", "on"), ("lights on", "on"), ("turn off the light", "off")]
    train, val, test = split_for_build(pairs)
    built = build_model(train, val, test)
    assert built.gate["split"] in ("val+test", "val", "test")
    only_train = build_model(pairs, [], [])
    assert only_train.gate["split"] == "train"
    assert only_train.metrics["calibration_source"] == "none"


def test_bots_that_cannot_make_a_classifier_are_refused() -> None:
    with pytest.raises(BotInputError) as one:
        build_model([("hi", "greet"), ("hello", "greet")], [], [])
    assert one.value.reason == "too_few_intents"
    with pytest.raises(BotInputError) as empty:
        build_model([], [], [])
    assert empty.value.reason == "no_utterances"
    with pytest.raises(BotInputError) as unknown:
        build_model([("hi", "a"), ("bye", "b")], [("what", "c")], [])
    assert unknown.value.reason == "intent_without_training_data"
