"""Where a query is in the retry tier, carried in ``fleetserve_retry-*`` headers.

A query that failed transiently is re-produced to the retry topic with its key, value and
own headers unchanged, plus these headers. The worker reading it back knows from them how
many attempts failed, when the next one is due, and the query's first coordinates, so a
final dead letter still names the topic, partition and offset the query arrived on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from fleetserve.core.facts import EPOCH_MS_MAX, EPOCH_MS_MIN, RETRY_HEADER_PREFIX
from fleetserve.core.outcome import Origin
from fleetserve.core.records import Headers, InboundRecord
from fleetserve.kafka.headers import header_int, header_text, without

PREFIX: Final = RETRY_HEADER_PREFIX
ATTEMPT: Final = PREFIX + "attempt"
NOT_BEFORE: Final = PREFIX + "not-before-ms"
FIRST_FAILURE: Final = PREFIX + "first-failure-ms"
REASON: Final = PREFIX + "reason"
MESSAGE: Final = PREFIX + "message"
ORIGINAL_TOPIC: Final = PREFIX + "original-topic"
ORIGINAL_PARTITION: Final = PREFIX + "original-partition"
ORIGINAL_OFFSET: Final = PREFIX + "original-offset"
ORIGINAL_TIMESTAMP: Final = PREFIX + "original-timestamp"
MESSAGE_LIMIT: Final = 1024
_ATTEMPTS_LIMIT: Final = 1000
_INT32_MAX: Final = 2**31 - 1
_INT64_MAX: Final = 2**63 - 1
_TOPIC: Final = re.compile(r"[a-zA-Z0-9._-]{1,249}")


@dataclass(frozen=True, slots=True)
class RetryState:
    """``attempts`` failed so far; the next try is due at ``not_before_ms``."""

    attempts: int
    not_before_ms: int
    first_failed_ms: int
    reason: str
    message: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None


def retry_state(record: InboundRecord) -> RetryState | None:
    """The record's retry state, or None for a query on its first attempt.

    Only records read from the retry topic are asked, and only fleetserve writes there, but
    the headers are still parsed defensively: an unusable value counts as absent.
    """
    attempts = header_int(record.headers, ATTEMPT)
    if not 1 <= attempts <= _ATTEMPTS_LIMIT:
        return None
    timestamp = header_int(record.headers, ORIGINAL_TIMESTAMP, -1)
    state = RetryState(
        attempts=attempts,
        not_before_ms=header_int(record.headers, NOT_BEFORE),
        first_failed_ms=header_int(record.headers, FIRST_FAILURE),
        reason=header_text(record.headers, REASON) or "unknown",
        message=header_text(record.headers, MESSAGE) or "",
        topic=header_text(record.headers, ORIGINAL_TOPIC) or record.topic,
        partition=header_int(record.headers, ORIGINAL_PARTITION, record.partition),
        offset=header_int(record.headers, ORIGINAL_OFFSET, record.offset),
        timestamp_ms=timestamp if timestamp >= 0 else record.timestamp_ms,
    )
    return state if _plausible(state) else None


def retried_origin(record: InboundRecord) -> Origin | None:
    """The query a retry record carries, as first read, with this try's number.

    None when the record has no usable retry state: it is then treated as a first try.
    """
    state = retry_state(record)
    if state is None:
        return None
    return Origin(
        state.topic,
        state.partition,
        state.offset,
        state.timestamp_ms,
        original_headers(record),
        attempt=state.attempts + 1,
        first_failed_ms=state.first_failed_ms,
    )


def _plausible(state: RetryState) -> bool:
    """Within the dead-letter contract's bounds, so a stray write cannot break one."""
    return (
        _TOPIC.fullmatch(state.topic) is not None
        and 0 <= state.partition <= _INT32_MAX
        and 0 <= state.offset <= _INT64_MAX
        and (state.timestamp_ms is None or 0 <= state.timestamp_ms <= _INT64_MAX)
        and EPOCH_MS_MIN <= state.first_failed_ms <= EPOCH_MS_MAX
    )


def original_headers(record: InboundRecord) -> Headers:
    """The query's own headers, without the retry tier's."""
    return without(record.headers, (PREFIX,))


def retry_headers(state: RetryState) -> list[tuple[str, bytes | None]]:
    fields: list[tuple[str, object]] = [
        (ATTEMPT, state.attempts),
        (NOT_BEFORE, state.not_before_ms),
        (FIRST_FAILURE, state.first_failed_ms),
        (REASON, state.reason),
        (MESSAGE, state.message[:MESSAGE_LIMIT]),
        (ORIGINAL_TOPIC, state.topic),
        (ORIGINAL_PARTITION, state.partition),
        (ORIGINAL_OFFSET, state.offset),
    ]
    if state.timestamp_ms is not None:
        fields.append((ORIGINAL_TIMESTAMP, state.timestamp_ms))
    return [(name, str(value).encode()) for name, value in fields]
