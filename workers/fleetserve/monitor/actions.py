"""What the monitor changes: rollbacks (the guard's and an operator's) and dead-letter replays.

Both reuse the operators' own code: :class:`~fleetserve.deploy.control.ControlPlane` for
a normal rollback record, :func:`~fleetserve.dlq.replay.replay_dead_letters` exactly as
``fleetserve dlq replay`` runs it. Every change is logged and kept in the audit trail the
console shows. Everything here blocks (Kafka clients): the app runs it in a thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from fleetserve.deadletters.operators.filters import DeadLetterFilter
from fleetserve.deadletters.operators.read import read_dead_letters
from fleetserve.deadletters.operators.replay import ReplaySummary, RunLimits, replay_dead_letters
from fleetserve.deadletters.operators.replay_plan import ReplayEvent, ReplayOptions
from fleetserve.deadletters.operators.sink import ReplayTopics
from fleetserve.deadletters.operators.stats import DeadLetterStats
from fleetserve.deploy.control import ControlPlane
from fleetserve.deploy.placement import LocalPlacement, Placement, PublishingPlacement
from fleetserve.monitor.config import MonitorConfig
from fleetserve.monitor.guard import Watch, evidence
from fleetserve.store.kafka_store import KafkaModelStore
from fleetserve.store.local import LocalDirectoryStore

logger = logging.getLogger(__name__)

GUARD_ACTOR = "monitor"
CONSOLE_ACTOR = "console"
AUDIT_ENTRIES = 200
RECENT_DEAD_LETTERS = 50


@dataclass(frozen=True)
class AuditEntry:
    at_ms: int
    actor: str
    action: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "at_ms": self.at_ms,
            "actor": self.actor,
            "action": self.action,
            "detail": self.detail,
        }


class Actions:
    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.audit: deque[AuditEntry] = deque(maxlen=AUDIT_ENTRIES)
        self._replay_lock = threading.Lock()

    def _control(self, actor: str) -> ControlPlane:
        """A rollback checks the snapshot it restores, and places it on the models topic."""
        source = LocalDirectoryStore(self.config.store_dir)
        placement: Placement = (
            LocalPlacement(source)
            if self.config.models is None
            else PublishingPlacement(source, KafkaModelStore(self.config.kafka, self.config.models))
        )
        return ControlPlane(self.config.kafka, self.config.topics.deployments, placement, actor)

    def record(self, actor: str, action: str, detail: str) -> None:
        logger.warning("%s: %s: %s", actor, action, detail)
        self.audit.appendleft(AuditEntry(int(time.time() * 1000), actor, action, detail))

    # -- rollbacks -----------------------------------------------------------------------

    def guard_rollback(self, watch: Watch) -> str:
        """Roll the watched stage back with the evidence, unless it no longer serves the
        version under watch (someone deployed or rolled back meanwhile)."""
        with closing(self._control(GUARD_ACTOR)) as control:
            live = ((control.current(watch.bot_id) or {}).get("stages") or {}).get(watch.stage)
            if live is None or live["model_version"] != watch.new_version:
                return "superseded"
            proof = evidence(watch, self.config.policy, int(time.time() * 1000))
            control.rollback(watch.bot_id, watch.stage, evidence=proof)
        breached = ", ".join(c["metric"] for c in proof["checks"] if c["breached"])
        self.record(
            GUARD_ACTOR,
            "rollback",
            f"{watch.bot_id} {watch.stage}: {watch.new_version} -> {watch.old_version} "
            f"({breached})",
        )
        return "rolled_back"

    def guard_alert(self, watch: Watch) -> None:
        self.record(
            GUARD_ACTOR,
            "alert",
            f"{watch.bot_id} {watch.stage}: {watch.new_version} is worse than "
            f"{watch.old_version}: {watch.note}",
        )

    def operator_rollback(self, bot_id: str, stage: str) -> dict[str, Any]:
        with closing(self._control(CONSOLE_ACTOR)) as control:
            record = control.rollback(bot_id, stage)
        live = record["stages"][stage]["model_version"]
        self.record(CONSOLE_ACTOR, "rollback", f"{bot_id} {stage}: now {live}")
        return record

    # -- dead letters --------------------------------------------------------------------

    def dead_letters(self, dl_filter: DeadLetterFilter) -> dict[str, Any]:
        """Counts by reason and bot, and the latest dead letters, of those selected."""
        stats = DeadLetterStats()
        recent: deque[dict[str, Any]] = deque(maxlen=RECENT_DEAD_LETTERS)
        items = read_dead_letters(self.config.kafka, self.config.topics.dead_letters)
        with closing(items):
            for item in items:
                if item.dead_letter is None or not dl_filter.matches(item.dead_letter):
                    continue
                stats.add(item.dead_letter)
                recent.append(_row(item.id, item.dead_letter))
        return {"stats": stats.as_json(top=20), "recent": list(reversed(recent))}

    def replay(self, dl_filter: DeadLetterFilter, *, dry_run: bool, who: str) -> dict[str, Any]:
        """``fleetserve dlq replay`` with these filters; one replay at a time."""
        events: list[dict[str, Any]] = []

        def report(event: ReplayEvent) -> None:
            events.append({"id": event.item.id, "verdict": str(event.verdict), "why": event.why})

        if not self._replay_lock.acquire(blocking=False):
            raise RuntimeError("another replay is running")
        try:
            summary = replay_dead_letters(
                self.config.kafka,
                ReplayTopics(self.config.topics.dead_letters, self.config.topics.replays),
                dl_filter,
                ReplayOptions(),
                RunLimits(dry_run=dry_run),
                report,
                ReplaySummary(),
            )
        finally:
            self._replay_lock.release()
        counts = {str(verdict): n for verdict, n in summary.counts.items()}
        if not dry_run:
            self.record(who, "replay", f"{_describe(dl_filter)}: {counts or 'nothing selected'}")
        return {"dry_run": dry_run, "counts": counts, "events": events[:500]}


def _row(ident: str, dead_letter: Mapping[str, Any]) -> dict[str, Any]:
    model = dead_letter.get("model") or {}
    return {
        "id": ident,
        "reason": dead_letter["reason"],
        "bot_id": dead_letter.get("bot_id"),
        "version": model.get("version"),
        "stage": dead_letter.get("stage"),
        "message": dead_letter["message"][:300],
        "replay_attempt": dead_letter["replay_attempt"],
        "dead_lettered_at_ms": dead_letter["dead_lettered_at_ms"],
    }


def _describe(dl_filter: DeadLetterFilter) -> str:
    parts = [f"bot={','.join(sorted(dl_filter.bots))}" if dl_filter.bots else "every bot"]
    if dl_filter.reasons:
        parts.append(f"reason={','.join(sorted(dl_filter.reasons))}")
    return " ".join(parts)
