"""Crash evidence per partition: which offsets were being processed when a worker died.

Pure data and functions; ``ledger.py`` moves it through Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

VERSION: Final = 1
MAX_EVENTS: Final = 64  # a partition that crashes this often is set aside record by record


@dataclass(frozen=True, slots=True)
class CrashEvent:
    """A worker died while processing offsets ``first``..``last`` of one partition."""

    event_id: str  # the dead incarnation and its pass: the same crash is counted once
    first: int
    last: int
    worker: str
    at_ms: int

    def covers(self, offset: int) -> bool:
        return self.first <= offset <= self.last


@dataclass(frozen=True, slots=True)
class Evidence:
    """Every unresolved crash event of one partition, for one consumer group."""

    group: str
    topic: str
    partition: int
    events: tuple[CrashEvent, ...]

    def crashes_at(self, offset: int) -> int:
        """How many times a worker died while this offset was being processed."""
        return sum(1 for event in self.events if event.covers(offset))

    def workers_at(self, offset: int) -> list[str]:
        return [event.worker for event in self.events if event.covers(offset)]

    def resolved_by(self, next_offset: int) -> bool:
        """True once the group has committed past every event: nothing is left to judge."""
        return all(event.last < next_offset for event in self.events)

    def with_events(self, events: Iterable[CrashEvent]) -> Evidence:
        """These events added; one event id is counted once; the newest MAX_EVENTS kept."""
        merged = {event.event_id: event for event in (*self.events, *events)}
        newest = sorted(merged.values(), key=lambda e: e.at_ms)[-MAX_EVENTS:]
        return Evidence(self.group, self.topic, self.partition, tuple(newest))


def ledger_key(group: str, topic: str, partition: int) -> bytes:
    """One compacted key per group and partition; JSON so no separator can collide."""
    return orjson.dumps([group, topic, partition])


def encode_evidence(evidence: Evidence) -> bytes:
    return orjson.dumps(
        {
            "version": VERSION,
            "group": evidence.group,
            "topic": evidence.topic,
            "partition": evidence.partition,
            "events": [
                {
                    "id": e.event_id,
                    "first": e.first,
                    "last": e.last,
                    "worker": e.worker,
                    "at_ms": e.at_ms,
                }
                for e in evidence.events
            ],
        }
    )


def decode_evidence(raw: bytes) -> Evidence | None:
    """The evidence in ``raw``, or None when it is not a record this version can read."""
    try:
        value = orjson.loads(raw)
        if not isinstance(value, dict) or value.get("version") != VERSION:
            return None
        events = tuple(_event(item) for item in value["events"])
        return Evidence(str(value["group"]), str(value["topic"]), int(value["partition"]), events)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _event(item: Mapping[str, Any]) -> CrashEvent:
    return CrashEvent(
        str(item["id"]),
        int(item["first"]),
        int(item["last"]),
        str(item["worker"]),
        int(item["at_ms"]),
    )
