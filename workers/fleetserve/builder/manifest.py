"""The manifest that travels with every snapshot. Pure."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from fleetserve.bots.definition import BotDefinition
from fleetserve.builder.config import BuildConfig
from fleetserve.core.facts import VERSION
from fleetserve.models.pipeline import BuiltModel
from fleetserve.store.base import MODEL_FILE

MANIFEST_VERSION = 1


def make_manifest(
    bot: BotDefinition,
    built: BuiltModel,
    config: BuildConfig,
    *,
    build_key: str,
    build_seconds: float,
    created_at: dt.datetime,
) -> dict[str, Any]:
    """Everything needed to trust, serve and compare a snapshot, except its own address.

    The store adds ``version`` and the model's ``sha256`` and ``size_bytes`` when it
    publishes, because they are derived from the bytes it writes.
    """
    return {
        "manifest_version": MANIFEST_VERSION,
        "language": bot.language,
        "model": {"file": MODEL_FILE, "quantization": built.quantization, "format": "onnx"},
        "labels": list(built.labels),
        "fallback_threshold": built.fallback_threshold,
        "featurizer": dict(built.featurizer),
        "metrics": dict(built.metrics),
        "gate": dict(built.gate),
        "build": {
            "params": dict(built.params),
            "config": asdict(config),
            "dataset_sha256": bot.content_hash(),
            "build_key": build_key,
            "utterances": len(bot.utterances),
            "intents": len(bot.intents()),
            "out_of_scope_examples": len(bot.out_of_scope),
            "source": bot.source,
            "build_seconds": round(build_seconds, 4),
            "fleetserve": VERSION,
        },
        "created_at": created_at.isoformat(timespec="milliseconds"),
    }
