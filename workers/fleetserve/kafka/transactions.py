"""Commit a Kafka transaction, retrying what librdkafka calls retriable."""

from __future__ import annotations

import logging
import random

from confluent_kafka import KafkaError, KafkaException, Producer

from fleetserve.core.backoff import BackoffPolicy, compute_backoff

logger = logging.getLogger(__name__)

COMMIT_RETRIES = BackoffPolicy(base_ms=100, max_ms=5_000, max_attempts=10)


def commit_with_retries(
    producer: Producer, timeout_s: float, policy: BackoffPolicy = COMMIT_RETRIES
) -> None:
    """``commit_transaction``, again after a retriable error (a timeout, a coordinator that
    moved), with backoff; any other error is raised for the caller to abort or stop on.

    librdkafka documents this: a retriable commit error leaves the transaction open, and
    calling commit again is how to finish it.
    """
    for attempt in range(1, policy.max_attempts):
        try:
            producer.commit_transaction(timeout_s)
            return
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not (isinstance(error, KafkaError) and error.retriable()):
                raise
            logger.warning("commit_transaction will be retried: %s", error.str())
            producer.poll(compute_backoff(policy, attempt, random.random()) / 1e3)  # noqa: S311
    producer.commit_transaction(timeout_s)
