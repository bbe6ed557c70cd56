"""One bot's utterances to one publishable ONNX file: the model factory's entry point.

size the base configuration to the cap -> k-fold cross-validation (and a search, if asked)
chooses the configuration and measures it -> refit on every utterance -> export fp32 ->
quantize (int4 table, else int8) behind the accuracy gate -> fallback threshold from the
out-of-fold confidences ->
embed it in the file. Pure apart from onnxruntime running in memory (and the quantizer's
private temp directory).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fleetserve.errors import BotInputError
from fleetserve.models.calibrate import CalibrationOptions, calibrate_threshold, fallback_metrics
from fleetserve.models.config import (
    DEFAULT_MAX_MODEL_KB,
    DEFAULT_QUANTIZATION,
    QUANTIZATION,
    ModelConfig,
    QuantizationMode,
    table_format,
)
from fleetserve.models.crossval import cross_validate
from fleetserve.models.data import BotData
from fleetserve.models.distill import Distillation, DistillMode, distills, fit
from fleetserve.models.evaluate import latency_us
from fleetserve.models.folds import plan_folds
from fleetserve.models.gate import GateResult, Quantization, gate_published
from fleetserve.models.graph import export_onnx, with_metadata
from fleetserve.models.metadata import KEY_THRESHOLD, encode_metadata, threshold_text
from fleetserve.models.optimize import optimized_session
from fleetserve.models.quantize import quantize_int4, quantize_int8
from fleetserve.models.runtime import InferenceSession, new_session
from fleetserve.models.search import SearchOptions, SearchResult, search
from fleetserve.models.sizing import default_width, fit_to_cap
from fleetserve.models.train import ModelWeights
from fleetserve.models.width import WidthMode, selects_width

__all__ = ["BuildOptions", "BuiltModel", "build_model"]

logger = logging.getLogger(__name__)

Pair = tuple[str, str]


@dataclass(frozen=True)
class BuildOptions:
    search: SearchOptions = field(default_factory=SearchOptions)
    max_model_kb: float = DEFAULT_MAX_MODEL_KB
    # The table format tried first (int8, then fp32, if the gate refuses it).
    quantization: QuantizationMode = DEFAULT_QUANTIZATION
    base_params: Mapping[str, Any] | None = None  # overrides of the family's defaults
    distill: DistillMode = "auto"
    width: WidthMode = "off"  # compare table widths by CV (models/width.py)
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)
    tolerance_points: float = 0.5  # accuracy a quantized model may lose to fp32
    folds: int | None = None  # None: sized to the bot (models/folds.py)
    keep_fp32: bool = False
    seed: int = 0


@dataclass(frozen=True)
class BuiltModel:
    model_bytes: bytes  # the ONNX file to publish (int4, int8 or fp32)
    quantization: Quantization
    labels: tuple[str, ...]
    fallback_threshold: float
    featurizer: Mapping[str, Any]  # FeaturizerSpec.to_dict()
    params: Mapping[str, Any]  # the chosen hyper-parameters, plus the search's trials
    metrics: Mapping[str, Any]
    gate: Mapping[str, Any]
    fp32_bytes: bytes | None = None  # kept when asked and a quantized model was published


def build_model(
    utterances: Sequence[Pair],
    *,
    out_of_scope: Sequence[str] = (),
    options: BuildOptions | None = None,
) -> BuiltModel:
    """Choose, measure, refit, quantize behind the gate and calibrate one bot's model.

    Raises :class:`BotInputError` for data that cannot make a classifier.
    """
    options = options or BuildOptions()
    started = time.perf_counter()
    data = encode(utterances, out_of_scope)
    base = _base_config(data, options)
    folds = plan_folds(data.labels, options.seed, options.folds)
    distillation = Distillation() if distills(options.distill, len(data.texts)) else None
    found = search(data, base, folds, options.seed, _search_options(data, options), distillation)
    refit = _Refit(data, options, distillation)
    refit_started = time.perf_counter()
    weights = refit.weights(found.best.config)
    refit_seconds = time.perf_counter() - refit_started
    publishable = _publishable(refit, found.best.config, weights, _explicit_shape(options))
    chosen, models, gates, sessions = (
        publishable.config,
        publishable.models,
        publishable.gates,
        publishable.sessions,
    )
    spec = chosen.featurizer
    params = _params(chosen, options, distillation)
    gate = gates[-1]
    # A model refit to the cap is not the shape the search measured: measure it, so the
    # accuracy reported and the threshold calibrated are the published model's.
    cv = (
        cross_validate(data, chosen, folds, options.seed, distillation=distillation)
        if publishable.resized
        else found.best.cv
    )
    in_confidence = cv.oof_probs.max(axis=1)
    in_correct = cv.oof_probs.argmax(axis=1) == data.labels
    oos_confidence = cv.oos_probs.max(axis=1)
    calibration = calibrate_threshold(
        in_confidence, in_correct, oos_confidence, options=options.calibration
    )
    published = gate.published
    metrics = {
        "cv_accuracy": cv.accuracy,
        "cv_folds": len(folds),
        "cv_fold_accuracies": list(cv.fold_accuracies),
        "accuracy_note": "cross-validated: pooled out-of-fold predictions of fp32 fold models",
        "quantized_delta_points": gate.accuracy_quantized - gate.accuracy_fp32,
        **fallback_metrics(in_confidence, in_correct, oos_confidence, calibration.threshold),
        "calibration_source": calibration.source,
        "calibration_options": {
            "quantile": options.calibration.quantile,
            "target_oos_recall": options.calibration.target_oos_recall,
        },
        **_latency(sessions.get(published) or new_session(models["fp32"]), spec, data.texts),
        **{f"model_bytes_{name}": len(model) for name, model in models.items()},
        "search": found.record(),
        "refit_seconds": refit_seconds,
        "refit_to_cap": publishable.resized,
        "build_seconds": time.perf_counter() - started,
        "n_utterances": len(data.texts),
        "n_out_of_scope": len(data.out_of_scope),
    }
    logger.debug("built %d-intent model: %s", data.n_classes, metrics)
    return BuiltModel(
        model_bytes=with_metadata(
            models[published], {KEY_THRESHOLD: threshold_text(calibration.threshold)}
        ),
        quantization=published,
        labels=data.label_names,
        fallback_threshold=calibration.threshold,
        featurizer=spec.to_dict(),
        params={**params, "trials": _trials(found)},
        metrics=metrics,
        gate={**gate.record(), "tried": [g.reason for g in gates]},
        fp32_bytes=_kept_fp32(models, published, calibration.threshold, options.keep_fp32),
    )


@dataclass(frozen=True)
class _Refit:
    """What training the published model again, at another shape, needs."""

    data: BotData
    options: BuildOptions
    distillation: Distillation | None

    def weights(self, config: ModelConfig) -> ModelWeights:
        return _refit(self.data, config, self.options.seed, self.distillation)


@dataclass(frozen=True)
class _Publishable:
    config: ModelConfig  # of the weights the files below hold
    models: dict[Quantization, bytes]  # fp32 and each quantized file tried of those weights
    gates: list[GateResult]  # every gate, those of earlier shapes included
    sessions: dict[Quantization, InferenceSession]
    resized: list[str]  # why the model was refit to another shape, if it was


def _publishable(
    refit: _Refit, config: ModelConfig, weights: ModelWeights, shape_given: bool
) -> _Publishable:
    """Try each file format in turn (the table's, then int8, then fp32) until one passes the
    gate; fp32 needs none.

    A fallback keeps the cap: a format whose file of these weights would exceed it (int8
    after int4: about twice the table's bytes; fp32: four times int8's) is refit at a
    shape sized to the cap for that format first, unless the build was given its shape.
    """
    options, data = refit.options, refit.data
    gates: list[GateResult] = []
    resized: list[str] = []
    sessions: dict[Quantization, InferenceSession] = {}
    metadata = _metadata(config, refit)
    models: dict[Quantization, bytes] = {"fp32": export_onnx(weights, metadata)}
    first: tuple[Quantization, ...] = ("int4",) if config.quantization == "int4" else ()
    for layout in (*first, "int8", "fp32"):
        candidate = _file(layout, weights, metadata, models["fp32"])
        if not shape_given and len(candidate) > options.max_model_kb * 1024:
            smaller = _cap_config(config, layout, data, options)
            resized.append(
                f"{layout} of {config.featurizer.buckets} x {config.training.dim} would be "
                f"{len(candidate) / 1024:.0f} KB, over the {options.max_model_kb:g} KB cap: "
                f"refit at {smaller.featurizer.buckets} x {smaller.training.dim}"
            )
            config, weights = smaller, refit.weights(smaller)
            metadata = _metadata(config, refit)
            models, sessions = {"fp32": export_onnx(weights, metadata)}, {}
            candidate = _file(layout, weights, metadata, models["fp32"])
        if layout == "fp32":
            break
        sessions[layout], models[layout] = optimized_session(candidate)
        gate = gate_published(
            sessions[layout],
            weights,
            data,
            config.featurizer,
            options.tolerance_points,
            options.seed,
            layout,
        )
        gates.append(gate)
        if gate.passed:
            break
    return _Publishable(config, models, gates, sessions, resized)


def _file(
    layout: Quantization, weights: ModelWeights, metadata: Mapping[str, str], fp32: bytes
) -> bytes:
    """``layout``'s file of ``weights``, whose fp32 export is ``fp32``."""
    if layout == "int4":
        return quantize_int4(weights, metadata)
    return quantize_int8(fp32) if layout == "int8" else fp32


def _cap_config(
    config: ModelConfig, layout: Quantization, data: BotData, options: BuildOptions
) -> ModelConfig:
    """``config`` reshaped to fit the cap as a ``layout`` file: an int8 fallback drops the
    width int4 gave a large bot, then both take the rows that fit."""
    if layout == "int8":
        config = config.with_params({QUANTIZATION: "int8"})
        if "dim" not in (options.base_params or {}):
            config = config.with_params({"dim": default_width(config, data)})
    return fit_to_cap(config, data.n_classes, data, layout)


def _params(
    config: ModelConfig, options: BuildOptions, distillation: Distillation | None
) -> dict[str, Any]:
    return {**config.to_params(), "seed": options.seed, "distill": distillation is not None}


def _metadata(config: ModelConfig, refit: _Refit) -> dict[str, str]:
    params = _params(config, refit.options, refit.distillation)
    return encode_metadata(refit.data.label_names, 0.0, config.featurizer, params)


def _explicit_shape(options: BuildOptions) -> bool:
    """The build was given its table's shape, which is then taken as given."""
    return "buckets" in (options.base_params or {})


def _refit(
    data: BotData, config: ModelConfig, seed: int, distillation: Distillation | None
) -> ModelWeights:
    """A fresh model of ``config`` on every utterance. (Continuing from a fold model for
    40 % of the epochs instead measured +0.2 / -0.1 / -0.4 points on CLINC150 / SNIPS /
    paraKQC test sets: not worth the saving.)"""
    return fit(data, np.arange(len(data.texts)), config, seed, distillation)


def _trials(found: SearchResult) -> list[dict[str, Any]]:
    """Every configuration tried, when there was more than the base to try."""
    return found.trials if found.strategy != "none" or len(found.trials) > 1 else []


def _search_options(data: BotData, options: BuildOptions) -> SearchOptions:
    """The search as asked, plus width selection when ``options.width`` takes this bot and
    neither a search strategy nor a width or table size was given."""
    given = options.base_params or {}
    applies = (
        options.search.strategy == "none"
        and "dim" not in given
        and "buckets" not in given
        and selects_width(options.width, len(data.texts))
    )
    return replace(options.search, select_width=applies) if applies else options.search


def encode(utterances: Sequence[Pair], out_of_scope: Sequence[str] = ()) -> BotData:
    """Labels sorted by name; raises :class:`BotInputError` when no classifier can be made."""
    if not utterances:
        raise BotInputError("no_utterances", "the bot has no training utterances")
    labels = tuple(sorted({intent for _, intent in utterances}))
    if len(labels) < 2:
        raise BotInputError(
            "too_few_intents",
            f"a classifier needs at least 2 intents with training utterances, got {len(labels)}",
        )
    index = {label: i for i, label in enumerate(labels)}
    return BotData(
        [t for t, _ in utterances],
        np.array([index[i] for _, i in utterances], np.int64),
        labels,
        list(out_of_scope),
    )


def _base_config(data: BotData, options: BuildOptions) -> ModelConfig:
    params = dict(options.base_params or {})
    params.setdefault("max_model_kb", options.max_model_kb)
    params.setdefault(QUANTIZATION, table_format(options.quantization, len(data.texts)))
    config = ModelConfig.from_params(params)
    if "buckets" in params:  # an explicit shape is taken as given
        return config
    if "dim" not in params:
        config = config.with_params({"dim": default_width(config, data)})
    return fit_to_cap(config, data.n_classes, data)


def _latency(session: InferenceSession, spec: Any, texts: Sequence[str]) -> dict[str, float]:
    sample = list(texts[:256])
    return {
        "latency_us_batch1": latency_us(session, spec, sample, batch=1, repeats=3),
        "latency_us_per_query_batch64": latency_us(session, spec, sample, batch=64, repeats=1),
    }


def _kept_fp32(
    models: Mapping[Quantization, bytes], published: Quantization, threshold: float, keep: bool
) -> bytes | None:
    if not keep or published == "fp32":
        return None
    return with_metadata(models["fp32"], {KEY_THRESHOLD: threshold_text(threshold)})


def search_summary(result: SearchResult) -> dict[str, Any]:
    return result.record()
