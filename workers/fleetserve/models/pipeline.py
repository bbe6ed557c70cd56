"""One bot's utterances to one publishable ONNX file: the model factory's entry point.

search (optional) -> train -> export fp32 -> quantize int8 -> accuracy gate -> calibrate the
fallback threshold on the published model -> embed it in the file. Pure apart from
onnxruntime running in memory (and the quantizer's private temp directory).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetserve.errors import BotInputError
from fleetserve.models.calibrate import calibrate_threshold, fallback_metrics
from fleetserve.models.config import ModelConfig
from fleetserve.models.evaluate import accuracy, latency_us, run_all
from fleetserve.models.featurize import Features, FeaturizerSpec, featurize
from fleetserve.models.gate import GateResult, Quantization, decide
from fleetserve.models.graph import export_onnx, with_metadata
from fleetserve.models.metadata import KEY_THRESHOLD, encode_metadata, threshold_text
from fleetserve.models.quantize import quantize_int8
from fleetserve.models.runtime import InferenceSession, new_session
from fleetserve.models.search import Data, Trial, coordinate_search, train_once
from fleetserve.models.split import Split, split_for_build

__all__ = ["BuiltModel", "Split", "build_model", "split_for_build"]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BuiltModel:
    model_bytes: bytes  # the ONNX file to publish (int8 or fp32)
    quantization: Quantization
    labels: tuple[str, ...]
    fallback_threshold: float
    featurizer: Mapping[str, Any]  # FeaturizerSpec.to_dict()
    params: Mapping[str, Any]  # the chosen hyper-parameters, plus the search's trials
    metrics: Mapping[str, Any]
    gate: Mapping[str, Any]


@dataclass(frozen=True)
class _Splits:
    labels: tuple[str, ...]
    train: Data
    val: Data
    test: Data
    oos_val: Sequence[str]
    oos_test: Sequence[str]


def build_model(  # noqa: PLR0913 - the builder's agreed signature
    train: Split,
    val: Split,
    test: Split,
    *,
    oos_val: Sequence[str] = (),
    oos_test: Sequence[str] = (),
    search_budget_s: float = 0.0,
    int8_tolerance_points: float = 0.5,
    seed: int = 0,
    base_params: Mapping[str, Any] | None = None,
) -> BuiltModel:
    """Train, quantize behind the accuracy gate and calibrate one bot's model.

    The gate compares int8 with fp32 on val and test together (train when both are empty):
    the comparison favours neither, and twice the utterances halve the granularity (one
    flip among 150 test utterances alone is 0.67 points). ``accuracy_*`` in the metrics are
    on test. ``val`` and ``oos_val`` choose hyper-parameters and the fallback threshold;
    ``oos_test`` only measures. Raises :class:`BotInputError` for training data that cannot
    make a classifier.
    """
    started = time.perf_counter()
    splits = _encode(train, val, test, oos_val, oos_test)
    best, trials = _fit(splits, ModelConfig.from_params(base_params), search_budget_s, seed)
    spec = best.config.featurizer
    params = {**best.config.to_params(), "seed": seed}
    models: dict[Quantization, bytes] = {
        "fp32": export_onnx(best.weights, encode_metadata(splits.labels, 0.0, spec, params))
    }
    models["int8"] = quantize_int8(models["fp32"])
    held = _HeldOut.of(spec, splits)
    sessions = {q: new_session(model) for q, model in models.items()}
    scores = {q: _Scores.of(session, held) for q, session in sessions.items()}
    gate = _gate(splits, scores, spec, sessions, int8_tolerance_points)
    session, published = sessions[gate.published], scores[gate.published]
    calibration = calibrate_threshold(
        published.val.max(axis=1),
        published.val.argmax(axis=1) == splits.val.labels,
        run_all(session, held.oos_val).max(axis=1),
    )
    metrics = {
        **_accuracy(splits, scores, gate),
        "val_accuracy": best.val_accuracy if len(splits.val.texts) else None,
        **fallback_metrics(
            published.test.max(axis=1),
            published.test.argmax(axis=1) == splits.test.labels,
            run_all(session, held.oos_test).max(axis=1),
            calibration.threshold,
        ),
        "calibration_source": calibration.source,
        **_latency(session, spec, splits),
        "model_bytes_fp32": len(models["fp32"]),
        "model_bytes_int8": len(models["int8"]),
        "train_seconds": best.seconds,
        "search_trials": len(trials) if search_budget_s > 0 else 0,
        "build_seconds": time.perf_counter() - started,
        "n_train": len(splits.train.texts),
        "n_val": len(splits.val.texts),
        "n_test": len(splits.test.texts),
    }
    logger.debug("built %d-intent model: %s", len(splits.labels), metrics)
    return BuiltModel(
        model_bytes=with_metadata(
            models[gate.published], {KEY_THRESHOLD: threshold_text(calibration.threshold)}
        ),
        quantization=gate.published,
        labels=splits.labels,
        fallback_threshold=calibration.threshold,
        featurizer=spec.to_dict(),
        params={**params, "trials": trials if search_budget_s > 0 else []},
        metrics=metrics,
        gate=gate.record(),
    )


def _encode(
    train: Split, val: Split, test: Split, oos_val: Sequence[str], oos_test: Sequence[str]
) -> _Splits:
    labels = tuple(sorted({intent for _, intent in train}))
    if not train:
        raise BotInputError("no_utterances", "the bot has no training utterances")
    if len(labels) < 2:
        raise BotInputError(
            "too_few_intents",
            f"a classifier needs at least 2 intents with training utterances, got {len(labels)}",
        )
    index = {label: i for i, label in enumerate(labels)}

    def data(pairs: Split, name: str) -> Data:
        unknown = sorted({intent for _, intent in pairs if intent not in index})
        if unknown:
            raise BotInputError(
                "intent_without_training_data",
                f"{name} has intents with no training utterances: {unknown[:5]}",
            )
        return Data([t for t, _ in pairs], np.array([index[i] for _, i in pairs], np.int64))

    return _Splits(
        labels, data(train, "train"), data(val, "val"), data(test, "test"), oos_val, oos_test
    )


def _fit(
    splits: _Splits, config: ModelConfig, budget_s: float, seed: int
) -> tuple[Trial, list[dict[str, Any]]]:
    n_classes = len(splits.labels)
    if budget_s > 0 and len(splits.val.texts):
        return coordinate_search(
            splits.train, splits.val, n_classes, config, budget_s=budget_s, seed=seed
        )
    trial = train_once(splits.train, splits.val, n_classes, config, seed)
    return trial, [trial.record()]


@dataclass(frozen=True)
class _HeldOut:
    """The held-out texts featurized once with the chosen spec."""

    val: Features
    test: Features
    oos_val: Features
    oos_test: Features

    @classmethod
    def of(cls, spec: FeaturizerSpec, splits: _Splits) -> _HeldOut:
        return cls(
            featurize(spec, splits.val.texts),
            featurize(spec, splits.test.texts),
            featurize(spec, splits.oos_val),
            featurize(spec, splits.oos_test),
        )


@dataclass(frozen=True)
class _Scores:
    """One model's probabilities on val and test."""

    val: F32
    test: F32

    @classmethod
    def of(cls, session: InferenceSession, held: _HeldOut) -> _Scores:
        return cls(run_all(session, held.val), run_all(session, held.test))


def _gate(
    splits: _Splits,
    scores: dict[Quantization, _Scores],
    spec: FeaturizerSpec,
    sessions: dict[Quantization, InferenceSession],
    tolerance: float,
) -> GateResult:
    labels = np.concatenate([splits.val.labels, splits.test.labels])
    if labels.size:
        probs = {q: np.concatenate([s.val, s.test]) for q, s in scores.items()}
        split = "+".join(n for n, d in (("val", splits.val), ("test", splits.test)) if d.texts)
    else:  # a bot too small to hold anything out still gets its int8 checked
        train = featurize(spec, splits.train.texts)
        probs = {q: run_all(s, train) for q, s in sessions.items()}
        labels, split = splits.train.labels, "train"
    gate = decide(labels, probs["fp32"], probs["int8"], tolerance_points=tolerance, split=split)
    if not gate.passed:
        logger.info("int8 gate failed, publishing fp32: %s", gate.reason)
    return gate


def _accuracy(
    splits: _Splits, scores: dict[Quantization, _Scores], gate: GateResult
) -> dict[str, float]:
    """Accuracies on test; the gate's own numbers when there is no test split."""
    if len(splits.test.texts):
        fp32 = accuracy(scores["fp32"].test, splits.test.labels)
        int8 = accuracy(scores["int8"].test, splits.test.labels)
    else:
        fp32, int8 = gate.accuracy_fp32, gate.accuracy_int8
    return {"accuracy_fp32": fp32, "accuracy_int8": int8, "int8_delta_points": int8 - fp32}


def _latency(session: InferenceSession, spec: FeaturizerSpec, splits: _Splits) -> dict[str, float]:
    texts = list(splits.test.texts) or list(splits.train.texts)
    return {
        "latency_us_batch1": latency_us(session, spec, texts, batch=1, repeats=15),
        "latency_us_per_query_batch64": latency_us(session, spec, texts, batch=64, repeats=3),
    }
