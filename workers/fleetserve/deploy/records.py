"""Pure transitions of a bot's deployment record (contract: deployment v1).

Every function takes the current record (or None) and returns the next one; nothing
here talks to Kafka or the artifact store.

A stage entry and each entry of its history may name where the models topic holds the
snapshot (``location``): it travels with the version through promote and rollback, so
whatever a stage serves or can roll back to is found with one fetch.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fleetserve.core.records import Coordinates
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
    locate(record, target, location_of(live))
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
    with_location(entry, location_of(back))  # never the rolled-back version's location
    entry["deployed_at_ms"] = now_ms
    entry["previous"] = older
    record["stages"][stage] = entry
    if evidence is not None:
        record["evidence"] = dict(evidence)
    return _stamp(record, "rollback", actor, now_ms)


def locate(record: Record, stage: str, location: Coordinates | None) -> Record:
    """``record`` with ``stage``'s live snapshot at ``location`` (None: not stated)."""
    with_location(record["stages"][stage], location)
    return record


def location_of(entry: dict[str, Any]) -> Coordinates | None:
    """The (topic, partition, offset) an entry names, if any."""
    where = entry.get("location")
    return None if where is None else (where["topic"], where["partition"], where["offset"])


def with_location(entry: dict[str, Any], location: Coordinates | None) -> dict[str, Any]:
    """``entry`` naming ``location`` (or none: an older record, or no models topic)."""
    if location is None:
        entry.pop("location", None)
    else:
        topic, partition, offset = location
        entry["location"] = {"topic": topic, "partition": partition, "offset": offset}
    return entry


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
    with_location(head, location_of(entry))
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
