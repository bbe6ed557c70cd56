"""What a transient failure becomes: another try on the retry tier, or a final dead letter."""

from __future__ import annotations

import dataclasses

from fleetserve.deadletters import reasons
from fleetserve.deadletters.build import Failure
from fleetserve.kafka.records import InboundRecord
from fleetserve.retry.backoff import BackoffPolicy, compute_backoff
from fleetserve.retry.state import RetryState


def after_transient_failure(
    record: InboundRecord,
    failure: Failure,
    policy: BackoffPolicy,
    *,
    now_ms: int,
    draw: float,
    prior: RetryState | None = None,
) -> RetryState | Failure:
    """The query's next retry, or the dead letter that ends it.

    It ends as ``retries_exhausted`` once ``policy.max_attempts`` tries have failed, and
    as ``deadline_exceeded`` when its deadline would pass before the next try is due:
    waiting for an answer nobody can use only delays the dead letter. ``prior`` is the
    record's state when it was read from the retry tier.
    """
    attempts = 1 if prior is None else prior.attempts + 1
    last = f"{failure.reason}: {failure.message}"
    if attempts >= policy.max_attempts:
        return dataclasses.replace(
            failure,
            reason=reasons.RETRIES_EXHAUSTED,
            message=f"gave up after {attempts} attempts; the last failed with {last}",
            retriable=False,
        )
    due_ms = now_ms + compute_backoff(policy, attempts, draw)
    if failure.deadline_ms is not None and due_ms >= failure.deadline_ms:
        return dataclasses.replace(
            failure,
            reason=reasons.DEADLINE_EXCEEDED,
            message=f"the deadline passes before retry {attempts + 1} would be due "
            f"(deadline {failure.deadline_ms}, due {due_ms}); after {last}",
            retriable=False,
        )
    return RetryState(
        attempts=attempts,
        not_before_ms=due_ms,
        first_failed_ms=now_ms if prior is None else prior.first_failed_ms,
        reason=failure.reason,
        message=failure.message,
        topic=record.topic if prior is None else prior.topic,
        partition=record.partition if prior is None else prior.partition,
        offset=record.offset if prior is None else prior.offset,
        timestamp_ms=record.timestamp_ms if prior is None else prior.timestamp_ms,
    )
