"""`relabel report`: what the data loop did per bot, from the review directory alone."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetserve.relabel.files import LEDGER, RUNS, queue_bots, read_clusters, read_jsonl, read_queue


@dataclass
class BotStatus:
    bot_id: str
    entries: int = 0
    queries: int = 0
    labelled: int = 0
    rejected: int = 0
    clusters: int = 0
    named_clusters: int = 0
    applied: int = 0
    new_intents: list[str] = field(default_factory=list)
    intents_added_to: dict[str, int] = field(default_factory=dict)
    last_applied_ms: int | None = None
    last_collect: dict[str, Any] = field(default_factory=dict)


def relabel_report(directory: Path) -> list[BotStatus]:
    ledger: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in read_jsonl(directory / LEDGER):
        ledger[str(record["bot_id"])].append(record)
    last_run: dict[str, dict[str, Any]] = {}
    for run in read_jsonl(directory / RUNS):
        for bot, counts in (run.get("bots") or {}).items():
            last_run[bot] = counts
    bots = sorted(set(queue_bots(directory)) | set(ledger))
    return [_status(directory, bot, ledger[bot], last_run.get(bot, {})) for bot in bots]


def _status(
    directory: Path, bot: str, applied: list[dict[str, Any]], last: dict[str, Any]
) -> BotStatus:
    entries = read_queue(directory, bot)
    clusters = read_clusters(directory, bot)
    per_intent = Counter(str(r["intent"]) for r in applied)
    return BotStatus(
        bot_id=bot,
        entries=len(entries),
        queries=sum(e.count for e in entries.values()),
        labelled=sum(e.accepted_label() is not None for e in entries.values()),
        rejected=sum(e.decision == "reject" for e in entries.values()),
        clusters=len(clusters),
        named_clusters=sum(c.label is not None for c in clusters),
        applied=len(applied),
        new_intents=sorted({str(r["intent"]) for r in applied if r.get("new_intent")}),
        intents_added_to=dict(sorted(per_intent.items())),
        last_applied_ms=max((int(r["applied_at_ms"]) for r in applied), default=None),
        last_collect=last,
    )
