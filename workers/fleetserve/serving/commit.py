"""Publish a pass's outputs and advance the consumed offsets, exactly-once or at-least-once.

Exactly-once: the outputs and the offsets go in one Kafka transaction, so a reader with
``isolation.level=read_committed`` sees each query's outcome once or not at all, and a
crashed pass is re-read from the last committed offset.

At-least-once: outputs are produced idempotently and flushed; only when every delivery
succeeded are the offsets stored (and auto-committed). A crash can repeat a pass, so
callers deduplicate replies by ``request_id``.

A record the broker refuses for that record alone (too large for the topic, a partition
or topic that does not exist, not authorized) never stops the worker: refused at
``produce`` it is replaced at once by a dead letter; refused on delivery, the pass is
re-read and the record becomes a dead letter then (:meth:`Committer.take_rejections`).
Only librdkafka's own fatal verdict (a fenced producer, say) stops a worker.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Final, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from fleetserve.core.backoff import BackoffPolicy, compute_backoff
from fleetserve.core.outcome import Verdict
from fleetserve.core.records import Coordinates, Partition
from fleetserve.deadletters import reasons
from fleetserve.deadletters.headers import DLT_PHASE, DLT_REASON
from fleetserve.errors import FatalError, ProducerQueueFull
from fleetserve.kafka.headers import header_text
from fleetserve.kafka.transactions import commit_with_retries
from fleetserve.serving.outputs import Output, PassResult

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

# Refusals that concern one record, not the producer: that record becomes a dead letter.
PER_RECORD_ERRORS: Final = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,  # librdkafka's own size check uses the same code
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError.POLICY_VIOLATION,
        KafkaError.INVALID_MSG,
        KafkaError._INVALID_ARG,
    }
)

Rescue = Callable[[Output, Verdict], Output]
"""The dead letter that stands in for an output the broker refused."""


class Committer(Protocol):
    def start(self) -> None: ...
    def commit(self, consumer: Consumer, result: PassResult) -> bool:
        """True once outputs and offsets are durable; False when the pass must be re-read."""
        ...

    def take_rejections(self) -> dict[Coordinates, Verdict]:
        """Records whose output the broker refused on delivery in the last commit."""
        ...

    def healthy(self) -> bool: ...
    def close(self) -> None: ...


QUEUE_FULL_POLICY = BackoffPolicy(base_ms=10, max_ms=1_000, max_attempts=40)


def refused_verdict(output: Output, error: KafkaError) -> Verdict:
    """What the record of a refused output becomes."""
    why = f"the broker refused the {output.kind.replace('_', ' ')} to {output.topic}: {error.str()}"
    if output.kind != "dead_letter":
        return Verdict(reasons.PUBLISH_FAILED, reasons.PHASE_PUBLISH, why)
    # The dead letter itself was refused (too large for a drifted topic config): keep its
    # reason and leave the original out, which is what made it too large.
    reason = header_text(output.headers, DLT_REASON) or reasons.PUBLISH_FAILED
    phase = header_text(output.headers, DLT_PHASE) or reasons.PHASE_PUBLISH
    return Verdict(reason, phase, why, minimal=True)


def is_per_record(error: KafkaError) -> bool:
    return not error.fatal() and error.code() in PER_RECORD_ERRORS


def produce_all(
    producer: Producer,
    result: PassResult,
    rescue: Rescue,
    on_delivery: Callable[[Output, KafkaError | None, Message], None] | None = None,
    policy: BackoffPolicy = QUEUE_FULL_POLICY,
) -> None:
    """Produce every output; a full queue is waited out with backoff, then given up on.

    An output refused at once for itself alone is replaced in ``result`` by its rescue.
    """
    for index, output in enumerate(result.outputs):
        try:
            _produce(producer, output, on_delivery, policy)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if (
                output.record is None
                or not isinstance(error, KafkaError)
                or not is_per_record(error)
            ):
                raise
            stand_in = rescue(output, refused_verdict(output, error))
            logger.warning("%s refused for %s: %s", output.kind, output.record.where, error.str())
            _produce(producer, stand_in, on_delivery, policy)  # a refusal here is the cluster's
            result.swap(index, stand_in)


def _produce(
    producer: Producer,
    output: Output,
    on_delivery: Callable[[Output, KafkaError | None, Message], None] | None,
    policy: BackoffPolicy,
) -> None:
    kwargs: dict[str, Any] = {"key": output.key, "value": output.value}
    if output.headers:
        kwargs["headers"] = list(output.headers)
    if output.partition is not None:
        kwargs["partition"] = output.partition
    if on_delivery is not None:
        kwargs["on_delivery"] = partial(on_delivery, output)
    for attempt in range(1, policy.max_attempts + 1):
        try:
            producer.produce(output.topic, **kwargs)
            return
        except BufferError:
            # Queue full: serve delivery callbacks while waiting for it to drain.
            wait_ms = compute_backoff(policy, attempt, random.random())  # noqa: S311
            producer.poll(wait_ms / 1e3)
    raise ProducerQueueFull(f"the producer queue stayed full for {policy.max_attempts} waits")


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


class _Rejections:
    """Delivery failures of the current commit that concern one record each."""

    def __init__(self) -> None:
        self.verdicts: dict[Coordinates, Verdict] = {}
        self.other: list[KafkaError] = []

    def on_delivery(self, output: Output, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            return
        if output.record is not None and is_per_record(error):
            self.verdicts[output.record.coordinates] = refused_verdict(output, error)
        else:
            self.other.append(error)

    def take(self) -> dict[Coordinates, Verdict]:
        taken, self.verdicts = self.verdicts, {}
        self.other = []
        return taken


class TransactionalCommitter:
    def __init__(self, producer: Producer, rescue: Rescue) -> None:
        self.producer = producer
        self.rescue = rescue
        self._fatal: str | None = None
        self._rejections = _Rejections()

    def start(self) -> None:
        self.producer.init_transactions(TIMEOUT_S)

    def healthy(self) -> bool:
        return self._fatal is None

    def take_rejections(self) -> dict[Coordinates, Verdict]:
        return self._rejections.take()

    def commit(self, consumer: Consumer, result: PassResult) -> bool:
        try:
            self.producer.begin_transaction()
            produce_all(self.producer, result, self.rescue, self._rejections.on_delivery)
            self.producer.send_offsets_to_transaction(
                offsets_of(result.next_offsets), consumer.consumer_group_metadata(), TIMEOUT_S
            )
            commit_with_retries(self.producer, TIMEOUT_S)
        except KafkaException as exc:
            return self._recover(consumer, result, exc)
        except ProducerQueueFull as exc:
            logger.warning("aborting the pass and re-reading it: %s", exc)
            self._abort(consumer, result)
            return False
        return True

    def _recover(self, consumer: Consumer, result: PassResult, exc: KafkaException) -> bool:
        """Abort and re-read the pass unless librdkafka says the producer itself is done."""
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.fatal():
            self._fatal = error.str()
            raise FatalError(
                f"the transactional producer failed and must restart: {error}"
            ) from exc
        logger.warning("aborting the pass's transaction and re-reading it: %s", error)
        self._abort(consumer, result)
        return False

    def _abort(self, consumer: Consumer, result: PassResult) -> None:
        try:
            self.producer.abort_transaction(TIMEOUT_S)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else exc
            self._fatal = str(error)
            raise FatalError(f"the transaction could not be aborted; restarting: {error}") from exc
        rewind(consumer, result.first_offsets)

    def close(self) -> None:
        self.producer.flush(TIMEOUT_S)


class AtLeastOnceCommitter:
    def __init__(self, producer: Producer, rescue: Rescue) -> None:
        self.producer = producer
        self.rescue = rescue
        self._fatal: str | None = None
        self._rejections = _Rejections()

    def start(self) -> None:
        """Nothing to set up: an idempotent producer needs no handshake."""

    def healthy(self) -> bool:
        return self._fatal is None

    def take_rejections(self) -> dict[Coordinates, Verdict]:
        return self._rejections.take()

    def commit(self, consumer: Consumer, result: PassResult) -> bool:
        try:
            produce_all(self.producer, result, self.rescue, self._rejections.on_delivery)
        except ProducerQueueFull as exc:
            logger.warning("re-reading the pass: %s", exc)
            rewind(consumer, result.first_offsets)
            return False
        pending = self.producer.flush(TIMEOUT_S)
        failures = self._rejections.other
        if failures or pending or self._rejections.verdicts:
            first = failures[0] if failures else None
            if first is not None and first.fatal():
                self._fatal = first.str()
                raise FatalError(f"the producer failed and must restart: {first.str()}")
            logger.warning("outputs not all delivered (%s); re-reading the pass", first or pending)
            rewind(consumer, result.first_offsets)
            return False
        consumer.store_offsets(offsets=offsets_of(result.next_offsets))
        return True

    def close(self) -> None:
        self.producer.flush(TIMEOUT_S)
