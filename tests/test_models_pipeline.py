"""build_model end to end: cross-validation, refit, gate, calibration, metadata, search."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest

from fleetserve.errors import BotInputError, ConfigError
from fleetserve.models.calibrate import CalibrationOptions
from fleetserve.models.config import (
    DEFAULT_TRAINING,
    INT4_MIN_UTTERANCES,
    ModelConfig,
    rows_under_cap,
    table_format,
)
from fleetserve.models.data import BotData
from fleetserve.models.featurize import FeaturizerSpec, featurize
from fleetserve.models.pipeline import BuildOptions, BuiltModel, build_model
from fleetserve.models.runtime import new_session, predict, read_model_metadata
from fleetserve.models.search import SearchOptions
from fleetserve.models.sizing import MAX_WIDTH, default_width
from fleetserve.models.width import MIN_WIDTH, next_width, selects_width

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
    return build_model(toy_bot(), out_of_scope=OOS)


def test_a_normal_bot_is_cross_validated_refit_and_published_int8(built: BuiltModel) -> None:
    assert built.quantization == "int8"  # auto: a small bot keeps the cheaper lookup
    assert built.gate["passed"] is True
    assert built.gate["published"] == "int8"
    assert len(built.gate["tried"]) == 1
    assert "within" in built.gate["reason"]
    metrics = built.metrics
    assert metrics["cv_folds"] == 3  # 144 utterances: three folds
    assert len(metrics["cv_fold_accuracies"]) == 3
    assert metrics["cv_accuracy"] > 90
    assert "cross-validated" in metrics["accuracy_note"]
    assert metrics["n_utterances"] == len(toy_bot())  # the refit saw every utterance
    assert abs(len(built.model_bytes) - metrics["model_bytes_int8"]) < 64
    assert metrics["model_bytes_int8"] < metrics["model_bytes_fp32"] / 3
    assert "model_bytes_int4" not in metrics
    assert metrics["search"]["strategy"] == "none"
    assert metrics["latency_us_batch1"] > 0
    assert metrics["fallback_recall"] is not None
    json.dumps(dict(metrics))  # the manifest stores it as JSON


def test_the_published_model_knows_every_utterance(built: BuiltModel) -> None:
    session = new_session(built.model_bytes)
    meta = read_model_metadata(session)
    pairs = toy_bot()
    probs = predict(session, meta.featurizer, [t for t, _ in pairs])
    predicted = [meta.labels[i] for i in probs.argmax(axis=1)]
    assert np.mean([p == i for p, (_, i) in zip(predicted, pairs, strict=True)]) > 0.97


def test_a_failed_gate_publishes_fp32_with_a_reason() -> None:
    options = BuildOptions(quantization="int4", tolerance_points=-100.0)
    built = build_model(toy_bot(), options=options)
    assert built.quantization == "fp32"
    assert built.gate["passed"] is False
    assert built.gate["published"] == "fp32"
    assert "outside the -100-point tolerance" in built.gate["reason"]
    # int4 first, then int8, each refused with its own measurement.
    assert [reason.split()[0] for reason in built.gate["tried"]] == ["int4", "int8"]
    ops = {node.op_type for node in onnx.load_from_string(built.model_bytes).graph.node}
    assert not ops & {"MatMulInteger", "GatherBlockQuantized"}
    assert len(built.model_bytes) <= 150 * 1024  # refit to the default cap when over it


def test_a_fallback_is_refit_to_the_cap_and_measured_at_its_own_shape() -> None:
    cap_kb = 20
    options = BuildOptions(quantization="int4", max_model_kb=cap_kb, tolerance_points=-100.0)
    built = build_model(toy_bot(), out_of_scope=OOS, options=options)
    assert built.quantization == "fp32"
    assert [reason.split()[0] for reason in built.gate["tried"]] == ["int4", "int8"]
    # int8 of the int4-sized table, then fp32 of the int8-sized one, would each be over it.
    resized = built.metrics["refit_to_cap"]
    assert [line.split()[0] for line in resized] == ["int8", "fp32"]
    assert all(f"over the {cap_kb} KB cap" in line for line in resized)
    assert len(built.model_bytes) <= cap_kb * 1024
    meta = read_model_metadata(new_session(built.model_bytes))
    assert meta.featurizer.buckets == built.featurizer["buckets"]
    assert f"refit at {built.featurizer['buckets']} x {built.params['dim']}" in resized[-1]
    searched = built.metrics["search"]["best_params"]
    # At this cap the rows stay at their minimum and the table narrows instead.
    assert built.featurizer["buckets"] * built.params["dim"] < searched["buckets"] * searched["dim"]
    assert (built.params["quantization"], searched["quantization"]) == ("int8", "int4")


def test_a_given_shape_is_published_as_given_even_over_the_cap() -> None:
    options = BuildOptions(
        max_model_kb=20, tolerance_points=-100.0, base_params={"buckets": 2048, "dim": 40}
    )
    built = build_model(toy_bot(), options=options)
    assert built.quantization == "fp32"
    assert built.metrics["refit_to_cap"] == []
    assert len(built.model_bytes) > 20 * 1024


def test_int4_tables_are_built_when_asked_and_sized_at_their_own_bytes() -> None:
    int8 = build_model(toy_bot(), options=BuildOptions(max_model_kb=20))
    int4 = build_model(toy_bot(), options=BuildOptions(quantization="int4", max_model_kb=20))
    assert (int8.quantization, int4.quantization) == ("int8", "int4")
    assert (int8.params["quantization"], int4.params["quantization"]) == ("int8", "int4")
    ops = {node.op_type for node in onnx.load_from_string(int4.model_bytes).graph.node}
    assert "GatherBlockQuantized" in ops
    # The same cap holds about 1.7 times the rows at width 40 (24 bytes a row against 40).
    rows = {q: rows_under_cap(150, 150, 40, q, 3600) for q in ("int4", "int8")}
    assert 1.6 < rows["int4"] / rows["int8"] < 1.7
    assert len(int8.model_bytes) <= 20 * 1024
    assert len(int4.model_bytes) <= 20 * 1024


def test_auto_quantization_gives_large_bots_int4_tables_and_a_wider_row() -> None:
    assert table_format("auto", INT4_MIN_UTTERANCES - 1) == "int8"
    assert table_format("auto", INT4_MIN_UTTERANCES) == "int4"
    assert table_format("int4", 10) == "int4"
    texts = [f"utterance number {i}" for i in range(INT4_MIN_UTTERANCES)]
    large = BotData(texts, np.arange(len(texts)) % 150, tuple(f"i{k}" for k in range(150)))
    few_intents = ModelConfig(quantization="int4")
    assert default_width(few_intents, large) == 2 * DEFAULT_TRAINING.dim
    assert default_width(replace(few_intents, quantization="int8"), large) == 40
    many = BotData(texts, np.arange(len(texts)) % 1000, tuple(f"i{k}" for k in range(1000)))
    # 1,000 intents: twice the width would make the head half the cap.
    assert default_width(few_intents, many) == DEFAULT_TRAINING.dim


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
    assert built.metrics["calibration_source"] == "in_scope_and_oos"
    session = new_session(built.model_bytes)
    meta = read_model_metadata(session)
    in_scope = predict(session, meta.featurizer, ["set an alarm for 9 am"]).max()
    assert in_scope >= built.fallback_threshold


def test_same_inputs_same_bytes() -> None:
    options = BuildOptions(seed=5)
    a = build_model(toy_bot(1), options=options)
    b = build_model(toy_bot(1), options=options)
    assert a.model_bytes == b.model_bytes
    assert a.fallback_threshold == b.fallback_threshold


def test_without_oos_the_threshold_comes_from_in_scope_confidences() -> None:
    built = build_model(toy_bot())
    assert built.metrics["calibration_source"] == "in_scope_quantile"
    assert built.metrics["fallback_precision"] is None
    assert built.metrics["fallback_recall"] is None


def test_a_target_oos_recall_sets_the_threshold_and_reports_its_effect() -> None:
    calibration = CalibrationOptions(target_oos_recall=100.0)
    built = build_model(toy_bot(), out_of_scope=OOS, options=BuildOptions(calibration=calibration))
    assert built.metrics["calibration_source"] == "target_oos_recall"
    assert built.metrics["fallback_recall"] == 100.0  # on the out-of-fold confidences
    quantile = build_model(
        toy_bot(), options=BuildOptions(calibration=CalibrationOptions(quantile=0.2))
    )
    assert quantile.metrics["in_scope_fallback_rate"] == pytest.approx(20.0, abs=2.0)


@pytest.mark.parametrize("strategy", ["coordinate", "tpe", "cmaes", "evolution"])
def test_searches_record_trials_stop_with_a_reason_and_respect_the_size_cap(
    strategy: str,
) -> None:
    options = BuildOptions(
        # A trial cap, not a short budget, ends it: on a busy machine 2 s may hold one trial.
        search=SearchOptions(strategy=strategy, budget_s=120.0, max_trials=4),  # type: ignore[arg-type]
        max_model_kb=48,
    )
    built = build_model(toy_bot(), options=options)
    search = built.metrics["search"]
    trials = built.params["trials"]
    assert search["strategy"] == strategy
    assert search["trials"] == len(trials) > 1
    assert search["stop_reason"]
    for trial in trials:
        if not trial["pruned"]:
            assert trial["model_kb"] <= 48
    best = max(t["score"] for t in trials if not t["pruned"])
    assert search["best_score"] == pytest.approx(best, abs=1e-3)
    assert len(built.model_bytes) <= 48 * 1024 * 1.1


def test_warm_starts_are_tried_first() -> None:
    # A large bot's parameters: its table format is not this bot's.
    warm = {"dim": 8, "buckets": 512, "quantization": "int4"}
    options = BuildOptions(search=SearchOptions(strategy="tpe", budget_s=0.5, warm_start=(warm,)))
    built = build_model(toy_bot(), options=options)
    second = built.params["trials"][1]["params"]
    assert (second["dim"], second["buckets"]) == (8, 512)
    assert second["quantization"] == built.params["quantization"] == "int8"


def test_base_params_override_defaults_and_typos_are_refused() -> None:
    options = BuildOptions(base_params={"buckets": 512, "dim": 8, "epochs": 3})
    built = build_model(toy_bot(), options=options)
    assert built.featurizer["buckets"] == 512
    assert (built.params["dim"], built.params["epochs"]) == (8, 3)
    with pytest.raises(ConfigError):
        build_model(toy_bot(), options=BuildOptions(base_params={"dims": 8}))


def test_width_selection_walks_widths_under_the_cap_and_publishes_the_best() -> None:
    built = build_model(toy_bot(), options=BuildOptions(width="on", max_model_kb=48))
    trials = built.params["trials"]
    widths = [t["params"]["dim"] for t in trials]
    assert len(widths) >= 2
    assert len(set(widths)) == len(widths)  # no width is cross-validated twice
    assert "width selection" in built.metrics["search"]["stop_reason"]
    best = max(trials, key=lambda t: t["score"])
    assert built.params["dim"] == best["params"]["dim"]
    assert built.params["buckets"] == best["params"]["buckets"]
    assert all(t["model_kb"] <= 48 for t in trials)
    assert len(built.model_bytes) <= 48 * 1024 * 1.1
    again = build_model(toy_bot(), options=BuildOptions(width="on", max_model_kb=48))
    assert again.model_bytes == built.model_bytes  # no wall-clock measurement decides
    off = build_model(toy_bot(), options=BuildOptions(width="off", max_model_kb=48))
    assert off.metrics["search"]["trials"] == 1
    assert off.params["trials"] == []


def test_width_selection_auto_takes_large_bots_and_yields_to_a_given_shape() -> None:
    assert selects_width("auto", 3000)
    assert not selects_width("auto", 2999)
    assert selects_width("on", 10)
    assert not selects_width("off", 10**6)
    given = build_model(toy_bot(), options=BuildOptions(width="on", base_params={"dim": 8}))
    assert given.params["dim"] == 8
    assert given.metrics["search"]["trials"] == 1


def test_width_steps_stay_on_multiples_of_four_within_bounds() -> None:
    assert next_width(40, up=True) == 60
    assert next_width(40, up=False) == 28
    assert next_width(MAX_WIDTH, up=True) is None
    assert next_width(MIN_WIDTH, up=False) is None
    width: int | None = 40
    while width is not None:
        assert width % 4 == 0
        assert MIN_WIDTH <= width <= MAX_WIDTH
        width = next_width(width, up=True)


def test_the_size_cap_shapes_the_table() -> None:
    small = build_model(toy_bot(), options=BuildOptions(max_model_kb=24))
    assert len(small.model_bytes) <= 24 * 1024 * 1.1


def test_distillation_trains_from_a_teacher_and_still_publishes_a_small_model() -> None:
    built = build_model(toy_bot(), options=BuildOptions(distill="on", max_model_kb=64))
    assert built.params["distill"] is True
    assert built.metrics["cv_accuracy"] > 80
    assert len(built.model_bytes) <= 64 * 1024 * 1.1


def test_tiny_bots_build() -> None:
    pairs = [("turn on the light", "on"), ("lights on", "on"), ("turn off the light", "off")]
    built = build_model(pairs)
    assert built.quantization in ("int4", "int8", "fp32")
    assert built.metrics["cv_folds"] >= 2


def test_bots_that_cannot_make_a_classifier_are_refused() -> None:
    with pytest.raises(BotInputError) as one:
        build_model([("hi", "greet"), ("hello", "greet")])
    assert one.value.reason == "too_few_intents"
    with pytest.raises(BotInputError) as empty:
        build_model([])
    assert empty.value.reason == "no_utterances"
