"""Which snapshots ``fleetserve gc --keep N`` removes from the models topic. Pure.

A snapshot goes only when both hold: no stage of its bot serves it or can roll back to it
(every stage's live version and its whole ``previous`` history count), and it is not
among the bot's ``keep`` newest (by the manifest's creation time, then publishing time).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetserve.store.index import IndexEntry
from fleetserve.store.kafka_store import entry_age

KEPT_NAMED = "named by a stage or its rollback history"
KEPT_NEWEST = "among the newest"


@dataclass(frozen=True)
class Verdict:
    entry: IndexEntry
    remove: bool
    why: str


def named_versions(record: Mapping[str, Any] | None) -> set[str]:
    """Every version a stage of this deployment record serves or can roll back to."""
    named: set[str] = set()
    for entry in (record or {}).get("stages", {}).values():
        named.add(entry["model_version"])
        named.update(previous["model_version"] for previous in entry.get("previous", []))
    return named


def plan(
    entries: Iterable[IndexEntry], deployments: Mapping[str, Mapping[str, Any]], keep: int
) -> list[Verdict]:
    """A verdict for every snapshot, newest first within each bot, bots in name order."""
    if keep < 0:
        raise ValueError(f"keep must be >= 0, not {keep}")
    by_bot: dict[str, list[IndexEntry]] = defaultdict(list)
    for entry in entries:
        by_bot[entry.bot_id].append(entry)
    verdicts: list[Verdict] = []
    for bot_id in sorted(by_bot):
        named = named_versions(deployments.get(bot_id))
        newest_first = sorted(by_bot[bot_id], key=entry_age, reverse=True)
        for rank, entry in enumerate(newest_first):
            if entry.version in named:
                verdicts.append(Verdict(entry, remove=False, why=KEPT_NAMED))
            elif rank < keep:
                verdicts.append(Verdict(entry, remove=False, why=f"{KEPT_NEWEST} {keep}"))
            else:
                verdicts.append(Verdict(entry, remove=True, why=f"older than the newest {keep}"))
    return verdicts
