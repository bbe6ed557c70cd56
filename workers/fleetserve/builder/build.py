"""Build one bot: cross-validate (and search), refit, quantize behind the gate, publish."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fleetserve.bots.assemble import Conflict
from fleetserve.bots.definition import BotDefinition
from fleetserve.builder.config import BuildConfig, build_key
from fleetserve.builder.manifest import make_manifest
from fleetserve.builder.result import BotBuildResult
from fleetserve.builder.sidecar import write_fp32_sidecar
from fleetserve.errors import BotInputError
from fleetserve.models.pipeline import BuiltModel, build_model
from fleetserve.store.base import ArtifactStore, version_for

logger = logging.getLogger(__name__)


def build_bot(
    bot: BotDefinition,
    config: BuildConfig,
    store: ArtifactStore,
    *,
    conflicts: Sequence[Conflict] = (),
    warm_start: tuple[Mapping[str, Any], ...] = (),
    budget_s: float | None = None,
) -> BotBuildResult:
    """Publish a snapshot for ``bot``, or skip it when inputs and config are unchanged.

    A bot whose data cannot make a model fails with a reason; nothing is published for it.
    ``warm_start`` and ``budget_s`` come from a fleet build sharing what its searches learnt.
    """
    started = time.perf_counter()
    listed = [c.to_dict() for c in conflicts]
    key = build_key(bot.content_hash(), config)
    existing = store.built_version(bot.bot_id, key)
    if existing is not None:
        return _skipped(bot, existing, store, time.perf_counter() - started, listed)
    try:
        built = build_model(
            [(u.text, u.intent) for u in bot.utterances],
            out_of_scope=bot.out_of_scope,
            options=config.model_options(warm_start, budget_s),
        )
    except BotInputError as exc:
        logger.warning("bot %s failed: %s: %s", bot.bot_id, exc.reason, exc)
        return BotBuildResult(
            bot.bot_id,
            "failed",
            source=bot.source,
            conflicts=listed,
            reason=exc.reason,
            message=str(exc),
            build_seconds=time.perf_counter() - started,
        )
    seconds = time.perf_counter() - started
    manifest = make_manifest(
        bot, built, config, build_key=key, build_seconds=seconds, created_at=dt.datetime.now(dt.UTC)
    )
    manifest["conflicts"] = {"policy": config.conflicts, "resolved": listed}
    if built.fp32_bytes is not None:
        manifest["model_fp32"] = write_fp32_sidecar(
            store, bot.bot_id, version_for(built.model_bytes), built.fp32_bytes
        )
    ref = store.put_snapshot(bot.bot_id, built.model_bytes, manifest)
    store.record_build(bot.bot_id, key, ref.version)
    logger.debug("bot %s built as %s (%s)", bot.bot_id, ref.version, built.quantization)
    return _result(bot, built, ref.version, time.perf_counter() - started, listed)


def _result(
    bot: BotDefinition,
    built: BuiltModel,
    version: str,
    seconds: float,
    conflicts: list[dict[str, Any]],
) -> BotBuildResult:
    metrics = built.metrics
    return BotBuildResult(
        bot.bot_id,
        "built",
        source=bot.source,
        version=version,
        quantization=built.quantization,
        accuracy=metrics["cv_accuracy"],
        quantized_delta_points=metrics["quantized_delta_points"],
        gate=_gate_summary(built),
        model_bytes=len(built.model_bytes),
        build_seconds=seconds,
        search=dict(metrics["search"]),
        conflicts=conflicts,
    )


def _gate_summary(built: BuiltModel) -> str:
    """The gate's verdict, and the refit a fallback over the cap took, for the build table."""
    verdict = "passed" if built.gate["passed"] else f"failed: {built.gate['reason']}"
    tried = built.gate.get("tried") or []
    if built.gate["passed"] and len(tried) > 1:
        verdict = f"passed after: {'; '.join(tried[:-1])}"
    resized = built.metrics.get("refit_to_cap") or []
    return "; ".join([verdict, *resized])


def _skipped(
    bot: BotDefinition,
    version: str,
    store: ArtifactStore,
    seconds: float,
    conflicts: list[dict[str, Any]],
) -> BotBuildResult:
    manifest = store.read_manifest(bot.bot_id, version)
    metrics = manifest.get("metrics", {})
    return BotBuildResult(
        bot.bot_id,
        "skipped",
        source=bot.source,
        version=version,
        quantization=manifest["model"]["quantization"],
        accuracy=metrics.get("cv_accuracy"),
        quantized_delta_points=metrics.get("quantized_delta_points"),
        gate="passed" if manifest.get("gate", {}).get("passed") else "failed",
        model_bytes=manifest["model"]["size_bytes"],
        build_seconds=seconds,
        search=metrics.get("search"),
        conflicts=conflicts,
    )
