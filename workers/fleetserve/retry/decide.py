"""What a transient failure becomes: another try on the retry tier, or a final dead letter."""

from __future__ import annotations

import dataclasses

from fleetserve.core.backoff import BackoffPolicy, compute_backoff
from fleetserve.core.outcome import Failure, Origin
from fleetserve.deadletters import reasons
from fleetserve.retry.state import RetryState


def after_transient_failure(
    failure: Failure,
    policy: BackoffPolicy,
    *,
    origin: Origin,
    now_ms: int,
    draw: float,
) -> RetryState | Failure:
    """The query's next retry, or the dead letter that ends it.

    It ends as ``retries_exhausted`` once ``policy.max_attempts`` tries have failed, and
    as ``deadline_exceeded`` when its deadline would pass before the next try is due:
    waiting for an answer nobody can use only delays the dead letter. ``origin`` is the
    query as first read, with the number of the try that just failed.
    """
    attempts = origin.attempt
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
        first_failed_ms=origin.first_failed_ms or now_ms,
        reason=failure.reason,
        message=failure.message,
        topic=origin.topic,
        partition=origin.partition,
        offset=origin.offset,
        timestamp_ms=origin.timestamp_ms,
    )
