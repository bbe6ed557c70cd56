"""Publish a pass's outputs and advance the consumed offsets, exactly-once or at-least-once.

Exactly-once: the outputs and the offsets go in one Kafka transaction, so a reader with
``isolation.level=read_committed`` sees each query's outcome once or not at all, and a
crashed pass is re-read from the last committed offset.

At-least-once: outputs are produced idempotently and flushed; only when every delivery
succeeded are the offsets stored (and auto-committed). A crash can repeat a pass, so
callers deduplicate replies by ``request_id``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from fleetserve.errors import Disposition, FatalError, RetriableError, classify_kafka_error
from fleetserve.retry.backoff import BackoffPolicy, compute_backoff
from fleetserve.serving.processor import Output, Partition, PassResult

logger = logging.getLogger(__name__)

# Small bursts of outputs, big queue: a full queue blocks the pass briefly, never drops.
PRODUCER_CONFIG: Mapping[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 2,
    "queue.buffering.max.messages": 200_000,
    "partitioner": "murmur2_random",
    # Room for the dead letter of the largest query (base64 of 1 MiB plus context); the
    # dead-letters topic declares the same limit in topics/topics.yaml.
    "message.max.bytes": 4_194_304,
}
# A crashed worker's open transaction blocks read_committed readers until it times out
# (or the same transactional.id starts again), so keep it short.
TRANSACTION_TIMEOUT_MS = 15_000
TIMEOUT_S = 30.0


class Committer(Protocol):
    def start(self) -> None: ...
    def commit(self, consumer: Consumer, result: PassResult) -> bool:
        """True once outputs and offsets are durable; False when the pass must be re-read."""
        ...

    def healthy(self) -> bool: ...
    def close(self) -> None: ...


class ProducerQueueFull(RetriableError):
    """The producer queue stayed full for the whole wait: the pass is aborted and re-read."""


QUEUE_FULL_POLICY = BackoffPolicy(base_ms=10, max_ms=1_000, max_attempts=40)


def produce_all(
    producer: Producer,
    outputs: Sequence[Output],
    on_delivery: Any = None,
    policy: BackoffPolicy = QUEUE_FULL_POLICY,
) -> None:
    """Produce every output; a full queue is waited out with backoff, then given up on."""
    for output in outputs:
        for attempt in range(1, policy.max_attempts + 1):
            try:
                kwargs: dict[str, Any] = {"key": output.key, "value": output.value}
                if output.headers:
                    kwargs["headers"] = list(output.headers)
                if output.partition is not None:
                    kwargs["partition"] = output.partition
                if on_delivery is not None:
                    kwargs["on_delivery"] = on_delivery
                producer.produce(output.topic, **kwargs)
                break
            except BufferError:
                # Queue full: serve delivery callbacks while waiting for it to drain.
                wait_ms = compute_backoff(policy, attempt, random.random())  # noqa: S311
                producer.poll(wait_ms / 1e3)
        else:
            raise ProducerQueueFull(
                f"the producer queue stayed full for {policy.max_attempts} waits"
            )


def offsets_of(positions: Mapping[Partition, int]) -> list[TopicPartition]:
    return [
        TopicPartition(topic, partition, offset) for (topic, partition), offset in positions.items()
    ]


def rewind(consumer: Consumer, positions: Mapping[Partition, int]) -> None:
    """Make the next poll return these partitions from these offsets again."""
    for tp in offsets_of(positions):
        try:
            consumer.seek(tp)
        except KafkaException as exc:  # revoked meanwhile: its new owner re-reads it
            logger.info("not rewinding %s[%s]: %s", tp.topic, tp.partition, exc)


class TransactionalCommitter:
    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self._fatal: str | None = None

    def start(self) -> None:
        self.producer.init_transactions(TIMEOUT_S)

    def healthy(self) -> bool:
        return self._fatal is None

    def commit(self, consumer: Consumer, result: PassResult) -> bool:
        try:
            self.producer.begin_transaction()
            produce_all(self.producer, result.outputs)
            self.producer.send_offsets_to_transaction(
                offsets_of(result.next_offsets), consumer.consumer_group_metadata(), TIMEOUT_S
            )
            self._commit_with_retries()
        except KafkaException as exc:
            return self._recover(consumer, result, exc)
        except ProducerQueueFull as exc:
            logger.warning("aborting the pass and re-reading it: %s", exc)
            self.producer.abort_transaction(TIMEOUT_S)
            rewind(consumer, result.first_offsets)
            return False
        return True

    def _commit_with_retries(self) -> None:
        for _attempt in range(3):
            try:
                self.producer.commit_transaction(TIMEOUT_S)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if not (isinstance(error, KafkaError) and error.retriable()):
                    raise
                logger.warning("commit_transaction will be retried: %s", error.str())
        self.producer.commit_transaction(TIMEOUT_S)

    def _recover(self, consumer: Consumer, result: PassResult, exc: KafkaException) -> bool:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.txn_requires_abort():
            logger.warning("aborting the pass's transaction and re-reading it: %s", error.str())
            self.producer.abort_transaction(TIMEOUT_S)
            rewind(consumer, result.first_offsets)
            return False
        self._fatal = str(error)
        raise FatalError(f"the transactional producer failed and must restart: {error}") from exc

    def close(self) -> None:
        self.producer.flush(TIMEOUT_S)


class AtLeastOnceCommitter:
    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self._fatal: str | None = None

    def start(self) -> None:
        """Nothing to set up: an idempotent producer needs no handshake."""

    def healthy(self) -> bool:
        return self._fatal is None

    def commit(self, consumer: Consumer, result: PassResult) -> bool:
        failures: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        try:
            produce_all(self.producer, result.outputs, on_delivery)
        except ProducerQueueFull as exc:
            logger.warning("re-reading the pass: %s", exc)
            rewind(consumer, result.first_offsets)
            return False
        pending = self.producer.flush(TIMEOUT_S)
        if failures or pending:
            first = failures[0] if failures else None
            if first is not None and classify_kafka_error(first) is Disposition.FATAL:
                self._fatal = first.str()
                raise FatalError(f"the producer failed and must restart: {first.str()}")
            logger.warning("outputs not all delivered (%s); re-reading the pass", first or pending)
            rewind(consumer, result.first_offsets)
            return False
        consumer.store_offsets(offsets=offsets_of(result.next_offsets))
        return True

    def close(self) -> None:
        self.producer.flush(TIMEOUT_S)
