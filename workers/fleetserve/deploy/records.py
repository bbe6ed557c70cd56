"""Pure transitions of a bot's deployment record (contract: deployment v1).

Every function takes the current record (or None) and returns the next one; nothing
here talks to Kafka or the artifact store.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fleetserve.errors import DeploymentRefused

HISTORY_LIMIT = 20

Record = dict[str, Any]


def deploy(
    current: Record | None,
    *,
    bot_id: str,
    stage: str,
    model_version: str,
    sha256: str,
    actor: str,
    now_ms: int,
    include_query_text: bool | None = None,
) -> Record:
    """Put ``model_version`` live on ``stage``; what served before goes on top of the history."""
    record = _start(current, bot_id)
    previous_entry = record["stages"].get(stage)
    entry: dict[str, Any] = {
        "model_version": model_version,
        "sha256": sha256,
        "deployed_at_ms": now_ms,
        "previous": _history_after(previous_entry, model_version, sha256),
    }
    keep_text = _text_switch(previous_entry, include_query_text)
    if keep_text is not None:
        entry["include_query_text"] = keep_text
    record["stages"][stage] = entry
    return _stamp(record, "deploy", actor, now_ms)


def promote(
    current: Record | None, *, bot_id: str, source: str, target: str, actor: str, now_ms: int
) -> Record:
    """Serve on ``target`` exactly what ``source`` serves now."""
    if source == target:
        raise DeploymentRefused(f"cannot promote {bot_id} from {source} to itself")
    live = (current or {}).get("stages", {}).get(source)
    if live is None:
        raise DeploymentRefused(f"{bot_id} has nothing deployed on {source} to promote")
    record = deploy(
        current,
        bot_id=bot_id,
        stage=target,
        model_version=live["model_version"],
        sha256=live["sha256"],
        actor=actor,
        now_ms=now_ms,
    )
    return _stamp(record, "promote", actor, now_ms)


def rollback(
    current: Record | None,
    *,
    bot_id: str,
    stage: str,
    actor: str,
    now_ms: int,
    evidence: Mapping[str, Any] | None = None,
) -> Record:
    """Return ``stage`` to the snapshot it served before the current one.

    ``evidence``: why the monitor's guard rolled back (deployment v1 ``evidence``).
    """
    live = (current or {}).get("stages", {}).get(stage)
    if live is None:
        raise DeploymentRefused(f"{bot_id} has nothing deployed on {stage} to roll back")
    if not live["previous"]:
        raise DeploymentRefused(
            f"{bot_id} on {stage} serves {live['model_version']} and has no earlier version"
        )
    record = _start(current, bot_id)
    back, *older = live["previous"]
    entry = {**live, "model_version": back["model_version"], "sha256": back["sha256"]}
    entry["deployed_at_ms"] = now_ms
    entry["previous"] = older
    record["stages"][stage] = entry
    if evidence is not None:
        record["evidence"] = dict(evidence)
    return _stamp(record, "rollback", actor, now_ms)


def _start(current: Record | None, bot_id: str) -> Record:
    if current is None:
        return {"version": 1, "bot_id": bot_id, "stages": {}}
    if current.get("bot_id") != bot_id:
        raise DeploymentRefused(f"record is for {current.get('bot_id')!r}, not {bot_id!r}")
    record = copy.deepcopy(current)
    record.pop("evidence", None)  # evidence explains one rollback, not the records after it
    return record


def _history_after(
    entry: dict[str, Any] | None, model_version: str, sha256: str
) -> list[dict[str, str]]:
    if entry is None:
        return []
    if entry["model_version"] == model_version and entry["sha256"] == sha256:
        return list(entry["previous"])  # redeploying what is live adds no history
    head = {"model_version": entry["model_version"], "sha256": entry["sha256"]}
    return [head, *entry["previous"]][:HISTORY_LIMIT]


def _text_switch(entry: dict[str, Any] | None, requested: bool | None) -> bool | None:
    if requested is not None:
        return requested
    if entry is not None and "include_query_text" in entry:
        return bool(entry["include_query_text"])
    return None


def _stamp(record: Record, action: str, actor: str, now_ms: int) -> Record:
    record["action"] = action
    record["actor"] = actor
    record["updated_at_ms"] = now_ms
    return record
