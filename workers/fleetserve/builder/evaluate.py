"""``fleetserve eval``: score a published snapshot (and its kept fp32 twin) on a test file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetserve.bots.loader import format_for
from fleetserve.bots.rows import Row, parse_rows
from fleetserve.builder.sidecar import read_fp32_sidecar
from fleetserve.errors import ArtifactMissing, BotInputError
from fleetserve.models.evaluate import run_all
from fleetserve.models.featurize import featurize
from fleetserve.models.runtime import new_session, read_model_metadata
from fleetserve.models.scoring import score_predictions
from fleetserve.store.base import MANIFEST_FILE
from fleetserve.store.local import LocalDirectoryStore


@dataclass(frozen=True)
class Target:
    bot_id: str
    version: str
    store: LocalDirectoryStore


def resolve(target: str, store: LocalDirectoryStore) -> Target:
    """``BOT`` (its newest snapshot), ``BOT/VERSION``, ``BOT@VERSION`` or a snapshot folder."""
    path = Path(target)
    if (path / MANIFEST_FILE).is_file():
        return Target(path.parent.name, path.name, LocalDirectoryStore(path.parent.parent))
    for separator in ("@", "/"):
        if separator in target:
            bot_id, version = target.split(separator, 1)
            return Target(bot_id, version, store)
    versions = store.versions(target)
    if not versions:
        raise ArtifactMissing(f"no snapshot of bot {target!r} in {store.root}")
    newest = max(versions, key=lambda v: store.read_manifest(target, v).get("created_at", ""))
    return Target(target, newest, store)


def read_test_file(path: Path) -> list[Row]:
    fmt = format_for(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BotInputError("unreadable_file", f"{path}: cannot read: {exc}") from None
    return parse_rows(data, fmt, str(path))


def evaluate_snapshot(target: Target, rows: list[Row]) -> dict[str, Any]:
    """Scores per quantization kept: the published model, and fp32 when the build kept it."""
    store = target.store
    manifest = store.read_manifest(target.bot_id, target.version)
    models = {manifest["model"]["quantization"]: store.read_model(target.bot_id, target.version)}
    fp32 = read_fp32_sidecar(store, target.bot_id, target.version, manifest)
    if fp32 is not None:
        models["fp32"] = fp32
    in_scope = [r for r in rows if r.intent is not None]
    oos = [r.text for r in rows if r.intent is None]
    results = {q: _score(model, in_scope, oos) for q, model in models.items()}
    return {
        "bot_id": target.bot_id,
        "version": target.version,
        "published": manifest["model"]["quantization"],
        "build_cv_accuracy": manifest.get("metrics", {}).get("cv_accuracy"),
        "results": results,
    }


def _score(model: bytes, in_scope: list[Row], oos: list[str]) -> dict[str, Any]:
    session = new_session(model)
    meta = read_model_metadata(model)
    spec = meta.featurizer
    probs = run_all(session, featurize(spec, [r.text for r in in_scope]))
    oos_probs = run_all(session, featurize(spec, oos))
    truth = [r.intent for r in in_scope if r.intent is not None]
    return score_predictions(meta.labels, probs, truth, oos_probs, meta.fallback_threshold)
