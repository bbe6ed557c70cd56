"""Where replays go: a transactional sink (queries and their ledger records, a chunk per
transaction) or a dry run that sends nothing.

``transactional.id`` is one per dead-letter topic, so two replays of it at once fence each
other: the later ``init_transactions`` aborts the earlier one's open transaction, and the
earlier one fails at its next transactional call and stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from confluent_kafka import KafkaError, KafkaException

from fleetserve.config.settings import KafkaSettings
from fleetserve.deadletters.operators.replay_plan import ReplayEvent
from fleetserve.errors import FatalError
from fleetserve.kafka.clients import producer
from fleetserve.kafka.transactions import commit_with_retries

logger = logging.getLogger(__name__)

TIMEOUT_S: Final = 30.0
TRANSACTION_TIMEOUT_MS: Final = 60_000
CHUNK_RECORDS: Final = 200
CHUNK_SECONDS: Final = 5.0
"""A chunk commits at this many replays or this age, whichever comes first, so a paced
replay shows progress and never nears the transaction timeout."""
PRODUCER_CONFIG: Final = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
    # Java clients' partitioner, as the control plane uses, for --to topics and the ledger.
    "partitioner": "murmur2_random",
}
_FENCED_CODES: Final = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)


def transactional_id(dead_letter_topic: str) -> str:
    """One per dead-letter topic: two replays of it at once fence each other."""
    return f"fleetserve-dlq-replay-{dead_letter_topic}"


@dataclass(frozen=True, slots=True)
class ReplayTopics:
    dead_letters: str
    ledger: str


class Sink(Protocol):
    def start(self) -> None: ...
    def send(self, event: ReplayEvent, ledger_key: str, ledger_record: bytes) -> None: ...
    def tick(self, upcoming_wait_s: float = 0.0) -> None: ...
    def finish(self) -> None: ...
    def close(self) -> None: ...


class DryRunSink:
    """Sends nothing and fences no one; every replay is reported as it is decided."""

    def __init__(self, emit: Callable[[ReplayEvent], None]) -> None:
        self.emit = emit

    def start(self) -> None:
        """Nothing to fence or begin."""

    def send(self, event: ReplayEvent, ledger_key: str, ledger_record: bytes) -> None:
        del ledger_key, ledger_record
        self.emit(event)

    def tick(self, upcoming_wait_s: float = 0.0) -> None:
        """No open chunk."""

    def finish(self) -> None:
        """Nothing to commit."""

    def close(self) -> None:
        """No client."""


class TransactionalSink:
    """Queries and their ledger records, committed together a chunk at a time."""

    def __init__(
        self, kafka: KafkaSettings, topics: ReplayTopics, emit: Callable[[ReplayEvent], None]
    ) -> None:
        self.topics = topics
        self.emit = emit
        self.transactional_id = transactional_id(topics.dead_letters)
        self.producer = producer(
            kafka, {**PRODUCER_CONFIG, "transactional.id": self.transactional_id}
        )
        self.pending: list[ReplayEvent] = []
        self.opened_at: float | None = None
        self.committed = 0
        self.fatal = False

    def start(self) -> None:
        logger.info("replaying with transactional.id %s", self.transactional_id)
        self._guard(lambda: self.producer.init_transactions(TIMEOUT_S))

    def send(self, event: ReplayEvent, ledger_key: str, ledger_record: bytes) -> None:
        outgoing = event.sent
        assert outgoing is not None
        if self.opened_at is None:
            self._guard(self.producer.begin_transaction)
            self.opened_at = time.monotonic()
        self.pending.append(event)
        query: dict[str, Any] = {"key": outgoing.key, "value": outgoing.value}
        if outgoing.headers:
            query["headers"] = list(outgoing.headers)
        if outgoing.partition is not None:
            query["partition"] = outgoing.partition
        self._produce(outgoing.topic, query)
        self._produce(self.topics.ledger, {"key": ledger_key.encode(), "value": ledger_record})
        if len(self.pending) >= CHUNK_RECORDS:
            self._commit()

    def tick(self, upcoming_wait_s: float = 0.0) -> None:
        """Commit the open chunk once it is (or, after the coming wait, would be) old."""
        if self.opened_at is None:
            return
        if time.monotonic() - self.opened_at + upcoming_wait_s >= CHUNK_SECONDS:
            self._commit()

    def finish(self) -> None:
        self._commit()

    def close(self) -> None:
        if self.fatal:
            # A fatal (fenced) producer can neither abort nor close cleanly: close() would
            # try an abort and warn. Its transaction is aborted by the broker or by the
            # producer that fenced it; the handle goes with the garbage collector.
            return
        if self.opened_at is not None:
            try:  # a failed or interrupted run: nothing of the open chunk may stay
                self.producer.abort_transaction(TIMEOUT_S)
            except KafkaException as exc:
                logger.warning("aborting the open replay transaction failed: %s", exc)
            self.opened_at = None
        self.producer.close()

    def _commit(self) -> None:
        if self.opened_at is None:
            return
        self._guard(lambda: commit_with_retries(self.producer, TIMEOUT_S))
        self.opened_at = None
        events, self.pending = self.pending, []
        self.committed += len(events)
        for event in events:
            self.emit(event)

    def _produce(self, topic: str, fields: dict[str, Any]) -> None:
        while True:
            try:
                self._guard(lambda: self.producer.produce(topic, **fields))
                return
            except BufferError:
                self.producer.poll(0.05)  # queue full: let deliveries drain, then retry

    def _guard(self, call: Callable[[], object]) -> None:
        try:
            call()
        except KafkaException as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: KafkaException) -> FatalError:
        error = exc.args[0] if exc.args else None
        text = error.str() if isinstance(error, KafkaError) else str(exc)
        self.fatal = isinstance(error, KafkaError) and error.fatal()
        done = f"{self.committed} replay(s) were committed with their ledger records"
        lost = f"the open chunk of {len(self.pending)} was not sent"
        if isinstance(error, KafkaError) and error.code() in _FENCED_CODES:
            return FatalError(
                f"another `fleetserve dlq replay` of {self.topics.dead_letters} started and "
                f"fenced this one ({text}); {done}, {lost}. The other run skips what the "
                "ledger holds."
            )
        return FatalError(
            f"replaying failed: {text}; {done}, {lost}. Running the same command again "
            "continues where this one stopped."
        )
