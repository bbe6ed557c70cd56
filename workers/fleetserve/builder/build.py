"""Build one bot: split, search, train, quantize behind the gate, publish a snapshot."""

from __future__ import annotations

import datetime as dt
import logging
import time

from fleetserve.bots.definition import BotDefinition
from fleetserve.builder.config import BuildConfig, build_key
from fleetserve.builder.manifest import make_manifest
from fleetserve.builder.result import BotBuildResult
from fleetserve.errors import BotInputError
from fleetserve.models.pipeline import BuiltModel, build_model, split_for_build
from fleetserve.store.base import ArtifactStore

logger = logging.getLogger(__name__)


def build_bot(bot: BotDefinition, config: BuildConfig, store: ArtifactStore) -> BotBuildResult:
    """Publish a snapshot for ``bot``, or skip it when inputs and config are unchanged.

    A bot whose data cannot make a model fails with a reason; nothing is published for it.
    """
    started = time.perf_counter()
    key = build_key(bot.content_hash(), config)
    existing = store.built_version(bot.bot_id, key)
    if existing is not None:
        return _skipped(bot, existing, store, time.perf_counter() - started)
    try:
        built = _train(bot, config)
    except BotInputError as exc:
        logger.warning("bot %s failed: %s: %s", bot.bot_id, exc.reason, exc)
        return BotBuildResult(
            bot.bot_id,
            "failed",
            source=bot.source,
            reason=exc.reason,
            message=str(exc),
            build_seconds=time.perf_counter() - started,
        )
    seconds = time.perf_counter() - started
    manifest = make_manifest(
        bot, built, config, build_key=key, build_seconds=seconds, created_at=dt.datetime.now(dt.UTC)
    )
    ref = store.put_snapshot(bot.bot_id, built.model_bytes, manifest)
    store.record_build(bot.bot_id, key, ref.version)
    logger.debug("bot %s built as %s (%s)", bot.bot_id, ref.version, built.quantization)
    return _result(bot, built, ref.version, time.perf_counter() - started)


def _train(bot: BotDefinition, config: BuildConfig) -> BuiltModel:
    pairs = [(u.text, u.intent) for u in bot.utterances]
    train, val, test = split_for_build(pairs, seed=config.seed)
    half = len(bot.out_of_scope) // 2
    return build_model(
        train,
        val,
        test,
        oos_val=bot.out_of_scope[:half],
        oos_test=bot.out_of_scope[half:],
        search_budget_s=config.search_budget_s,
        int8_tolerance_points=config.int8_tolerance_points,
        seed=config.seed,
    )


def _result(bot: BotDefinition, built: BuiltModel, version: str, seconds: float) -> BotBuildResult:
    metrics = built.metrics
    published = (
        metrics["accuracy_int8"] if built.quantization == "int8" else metrics["accuracy_fp32"]
    )
    return BotBuildResult(
        bot.bot_id,
        "built",
        source=bot.source,
        version=version,
        quantization=built.quantization,
        accuracy=published,
        accuracy_fp32=metrics["accuracy_fp32"],
        int8_delta_points=metrics["int8_delta_points"],
        gate="passed" if built.gate["passed"] else f"failed: {built.gate['reason']}",
        model_bytes=len(built.model_bytes),
        build_seconds=seconds,
    )


def _skipped(
    bot: BotDefinition, version: str, store: ArtifactStore, seconds: float
) -> BotBuildResult:
    manifest = store.read_manifest(bot.bot_id, version)
    metrics = manifest.get("metrics", {})
    quantization = manifest["model"]["quantization"]
    accuracy_key = "accuracy_int8" if quantization == "int8" else "accuracy_fp32"
    return BotBuildResult(
        bot.bot_id,
        "skipped",
        source=bot.source,
        version=version,
        quantization=quantization,
        accuracy=metrics.get(accuracy_key),
        accuracy_fp32=metrics.get("accuracy_fp32"),
        int8_delta_points=metrics.get("int8_delta_points"),
        gate="passed" if manifest.get("gate", {}).get("passed") else "failed",
        model_bytes=manifest["model"]["size_bytes"],
        build_seconds=seconds,
    )
