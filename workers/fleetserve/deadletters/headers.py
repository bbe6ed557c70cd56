"""Kafka headers on dead letters and replays: names, and pure functions to build and read them.

The dead letter's JSON value is the record of truth; these headers repeat its main fields
so tools that only see headers (kcat, Spring's DeadLetterPublishingRecoverer readers,
Connect-style dashboards) can filter without decoding. Names follow Spring's
``kafka_dlt-*`` convention under our own prefix; docs/architecture.md maps each one to
Spring's and Kafka Connect's ``__connect.errors.*`` equivalent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fleetserve.core.facts import REPLAY_HEADER_PREFIX

DLT_PREFIX: Final = "fleetserve_dlt-"
DLT_REASON: Final = DLT_PREFIX + "reason"
DLT_PHASE: Final = DLT_PREFIX + "phase"
DLT_MESSAGE: Final = DLT_PREFIX + "exception-message"
DLT_ERROR_TYPE: Final = DLT_PREFIX + "exception-fqcn"
DLT_ORIGINAL_TOPIC: Final = DLT_PREFIX + "original-topic"
DLT_ORIGINAL_PARTITION: Final = DLT_PREFIX + "original-partition"
DLT_ORIGINAL_OFFSET: Final = DLT_PREFIX + "original-offset"
DLT_ORIGINAL_TIMESTAMP: Final = DLT_PREFIX + "original-timestamp"
DLT_CONSUMER_GROUP: Final = DLT_PREFIX + "original-consumer-group"
DLT_WORKER_ID: Final = DLT_PREFIX + "worker-id"
DLT_BOT_ID: Final = DLT_PREFIX + "bot-id"
DLT_MODEL_VERSION: Final = DLT_PREFIX + "model-version"
DLT_ATTEMPTS: Final = DLT_PREFIX + "attempts"
DLT_FIRST_FAILURE: Final = DLT_PREFIX + "first-failure-ms"
DLT_LAST_FAILURE: Final = DLT_PREFIX + "last-failure-ms"
DLT_REPLAY_ATTEMPT: Final = DLT_PREFIX + "replay-attempt"

REPLAY_ATTEMPT: Final = REPLAY_HEADER_PREFIX + "attempt"
"""On a replayed query: how many times it has been replayed (1 on the first replay)."""
REPLAY_OF: Final = REPLAY_HEADER_PREFIX + "of"
"""On a replayed query: the dead letter it came from, as ``topic/partition/offset``."""

HEADER_MESSAGE_LIMIT: Final = 1024


def dead_letter_headers(dead_letter: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """The ``fleetserve_dlt-*`` headers of a dead letter v1 value; absent fields are left out."""
    source = dead_letter["source"]
    model = dead_letter.get("model") or {}
    fields: list[tuple[str, object]] = [
        (DLT_REASON, dead_letter["reason"]),
        (DLT_PHASE, dead_letter["phase"]),
        (DLT_ERROR_TYPE, dead_letter["error_type"]),
        (DLT_MESSAGE, dead_letter["message"][:HEADER_MESSAGE_LIMIT]),
        (DLT_ORIGINAL_TOPIC, source["topic"]),
        (DLT_ORIGINAL_PARTITION, source["partition"]),
        (DLT_ORIGINAL_OFFSET, source["offset"]),
        (DLT_ORIGINAL_TIMESTAMP, dead_letter["original"]["timestamp_ms"]),
        (DLT_CONSUMER_GROUP, source["consumer_group"]),
        (DLT_WORKER_ID, dead_letter["worker"]["id"]),
        (DLT_BOT_ID, dead_letter.get("bot_id")),
        (DLT_MODEL_VERSION, model.get("version")),
        (DLT_ATTEMPTS, dead_letter["attempts"]),
        (DLT_FIRST_FAILURE, dead_letter["first_failed_at_ms"]),
        (DLT_LAST_FAILURE, dead_letter["last_failed_at_ms"]),
        (DLT_REPLAY_ATTEMPT, dead_letter["replay_attempt"]),
    ]
    return [(name, str(value).encode()) for name, value in fields if value is not None]
