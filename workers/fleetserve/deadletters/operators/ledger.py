"""The replay ledger: a compacted topic with one record per replay of one original query.

Key: ``replay_plan.ledger_key`` (``<source topic>/<partition>/<offset>#<replay attempt>``),
so compaction keeps exactly the replays that happened. Value: a small JSON object saying
when, from which dead letter and to where. Ledger records are written in
the same transaction as the queries they describe, so one never exists without the other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import orjson

from fleetserve.config.settings import KafkaSettings
from fleetserve.deadletters.operators.replay_plan import OutgoingQuery
from fleetserve.kafka.scan import read_to_end

logger = logging.getLogger(__name__)

LEDGER_VERSION: Final = 1


def ledger_value(dead_letter: Mapping[str, Any], outgoing: OutgoingQuery, *, now_ms: int) -> bytes:
    return orjson.dumps(
        {
            "version": LEDGER_VERSION,
            "replayed_at_ms": now_ms,
            "dead_letter": outgoing.replay_of,
            "target_topic": outgoing.topic,
            "replay_attempt": outgoing.replay_attempt,
            "request_id": dead_letter.get("request_id"),
            "bot_id": dead_letter.get("bot_id"),
        }
    )


def read_ledger(kafka: KafkaSettings, topic: str) -> set[str]:
    """The keys of every replay recorded so far (a tombstone forgets one)."""
    keys: set[str] = set()
    for record in read_to_end(kafka, [topic]):
        if record.key is None:
            logger.warning("ignoring a ledger record without a key at %s", record.where)
            continue
        key = record.key.decode("utf-8", errors="replace")
        if record.value is None:
            keys.discard(key)
        else:
            keys.add(key)
    return keys
