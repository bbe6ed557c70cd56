"""Ask fleetserve over Kafka from Python: send queries, wait for each one's reply or dead letter.

One producer sends the queries; one consumer, assigned (not subscribed, so there is no
group join to wait for) to every partition of the replies and dead-letters topics from
their ends at :meth:`FleetClient.start`, feeds one background thread that hands each
arriving record to whoever waits for its request id. Workers publish inside transactions,
so the consumer reads committed records only.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, cast

import orjson
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from fleetserve.client.query import make_query
from fleetserve.config.settings import KafkaSettings
from fleetserve.contracts.codec import validate
from fleetserve.contracts.messages import DeadLetterV1, ReplyV1
from fleetserve.contracts.schemas import MessageKind
from fleetserve.contracts.schemas import preload as preload_schemas
from fleetserve.errors import ContractError, KafkaUnavailable, ReplyTimeout
from fleetserve.kafka import devbroker
from fleetserve.kafka.clients import consumer, producer
from fleetserve.kafka.offsets import log_ends

logger = logging.getLogger(__name__)

OutcomeKind = Literal["reply", "dead_letter"]

PRODUCER_CONFIG: Final[Mapping[str, Any]] = {
    # A retried send must not become two queries, and so two replies.
    "enable.idempotence": True,
    "acks": "all",
    # The Java clients' partitioner, as deploy/log.py uses: a bot's queries land on the
    # partition any other producer (in any language) would pick for it.
    "partitioner": "murmur2_random",
    # Interactive traffic: a short batching delay keeps the round trip low.
    "linger.ms": 2,
}
CONSUMER_CONFIG: Final[Mapping[str, Any]] = {
    "enable.auto.commit": False,
    # Workers write replies and dead letters in transactions; an aborted batch would
    # otherwise look like answers.
    "isolation.level": "read_committed",
    # The worker's own wait (kafka/devbroker.py): with librdkafka's 500 ms default, Tansu
    # held the client's fetch of replies for the whole wait, and every warm round trip of
    # the demo read about 250 ms.
    "fetch.wait.max.ms": devbroker.EMPTY_FETCH_WAIT_MS,
}
CLIENT_CONTRACTS: Final = (MessageKind.QUERY, MessageKind.REPLY, MessageKind.DEAD_LETTER)
POLL_BATCH: Final = 500
POLL_TIMEOUT_S: Final = 0.1


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one query ended: a reply v1 or a dead letter v1, as decoded from Kafka."""

    request_id: str
    kind: OutcomeKind
    record: dict[str, Any]
    latency_ms: float
    """Client-side round trip: from just before the query was produced to its arrival."""

    @property
    def reply(self) -> ReplyV1 | None:
        return cast(ReplyV1, self.record) if self.kind == "reply" else None

    @property
    def dead_letter(self) -> DeadLetterV1 | None:
        return cast(DeadLetterV1, self.record) if self.kind == "dead_letter" else None


class _Waiter:
    """One request in flight; completed once by the router thread or a delivery failure."""

    __slots__ = ("done", "error", "key", "outcome", "sent_at")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.sent_at = time.monotonic()
        self.done = threading.Event()
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None

    def complete(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.done.set()

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


class FleetClient:
    """Send queries and wait for their outcomes. Nothing touches the network before start().

    Thread-safe: any number of threads may send and wait at once. A request's first
    reply or dead letter wins; later ones for it (a replay, say) are ignored.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        queries_topic: str,
        replies_topic: str,
        dead_letters_topic: str,
        start_timeout_s: float = 10.0,
    ) -> None:
        self._kafka = kafka
        self.queries_topic = queries_topic
        self.replies_topic = replies_topic
        self.dead_letters_topic = dead_letters_topic
        self._start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._waiters: dict[str, _Waiter] = {}
        # Record keys are bot ids: a record whose bot nobody waits for is skipped unread.
        self._waiting_keys: Counter[bytes] = Counter()
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._thread: threading.Thread | None = None
        self.start_up_ms: float | None = None
        """How long :meth:`start` took: connections, offsets and metadata, before any query."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FleetClient:
        """Listen from the current end of replies and dead letters, then start routing.

        The end offsets are resolved before this returns, so an answer to any query sent
        afterwards is seen; and the producer is connected and knows where the queries topic
        lives, so a query's ``sent_at_ms`` (stamped by :meth:`send`) and its round trip do
        not include the client's own start-up, which :attr:`start_up_ms` reports instead.
        Raises :class:`KafkaUnavailable` if a topic cannot be read.
        """
        if self._thread is not None:
            raise RuntimeError("FleetClient.start() was already called")
        began = time.monotonic()
        # The contracts' validators compile on first use: the query's after sent_at_ms was
        # stamped, the reply's before the first answer was handed over.
        preload_schemas(CLIENT_CONTRACTS)
        # First, so its idempotent producer id (a round trip) is fetched meanwhile.
        sender = producer(self._kafka, PRODUCER_CONFIG)
        listener = consumer(
            self._kafka,
            {**CONSUMER_CONFIG, "group.id": f"fleetserve-client-{uuid.uuid4().hex[:12]}"},
        )
        try:
            # Tansu may under-report an end (its last batch's first offset + 1): starting
            # there reads a few old records, which matching by request id can afford.
            ends = log_ends(
                self._kafka, [self.replies_topic, self.dead_letters_topic], self._start_timeout_s
            )
            listener.assign(
                [
                    TopicPartition(topic, partition, high)
                    for topic, marks in ends.items()
                    for partition, (_low, high) in marks.items()
                ]
            )
        except BaseException:
            listener.close()
            raise
        try:
            connect_producer(sender, self.queries_topic, self._start_timeout_s)
        except BaseException:
            listener.close()
            raise
        self._consumer = listener
        self._producer = sender
        self.start_up_ms = (time.monotonic() - began) * 1000.0
        self._thread = threading.Thread(
            target=self._route_forever, name="fleetserve-client-router", daemon=True
        )
        self._thread.start()
        return self

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver queries still queued, stop routing and release both clients."""
        if self._producer is not None:
            unsent = self._producer.flush(timeout_s)
            if unsent:
                logger.warning("closing with %d queries not acknowledged by Kafka", unsent)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("the FleetClient router did not stop within %gs", timeout_s)
            else:
                # Released only once the router is gone: it polls both. A producer has no
                # close(); dropping the last reference disconnects it, where keeping it
                # held its broker connections for as long as this object lived.
                if self._consumer is not None:
                    self._consumer.close()
                    self._consumer = None
                self._producer = None
        self._fail_all(RuntimeError("the FleetClient was closed before an answer arrived"))

    def __enter__(self) -> FleetClient:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- requests --------------------------------------------------------------------------

    def send(self, bot_id: str, text: str, **query_fields: Any) -> str:
        """Produce one query (``make_query`` fields) keyed by its bot; its request id.

        Raises :class:`~fleetserve.errors.ContractError` for an invalid query, before
        anything is sent.
        """
        if self._producer is None:
            raise RuntimeError("the FleetClient is not started, or was closed: start() it first")
        query = make_query(bot_id, text, **query_fields)
        request_id: str = query["request_id"]
        key = bot_id.encode()
        waiter = self._register(request_id, key)
        try:
            self._produce(self._producer, key, orjson.dumps(query), request_id, waiter)
        except BaseException:
            self._unregister(request_id)
            raise
        return request_id

    def wait(self, request_id: str, timeout_s: float) -> Outcome:
        """The outcome of a request sent by this client, or :class:`ReplyTimeout`."""
        return self._wait(request_id, timeout_s, timeout_s)

    def ask(self, bot_id: str, text: str, timeout_s: float = 10.0, **fields: Any) -> Outcome:
        """Send one query and wait for its reply or dead letter."""
        return self.wait(self.send(bot_id, text, **fields), timeout_s)

    def ask_many(
        self, items: Iterable[tuple[str, str]], timeout_s: float = 10.0, **fields: Any
    ) -> list[Outcome | ReplyTimeout]:
        """Send every ``(bot_id, text)`` at once, then wait for all within one ``timeout_s``.

        Results come in the order of ``items``; a request without an answer in time is
        its :class:`ReplyTimeout` (which carries the request id) instead of raising, so
        one slow bot does not hide the other answers. ``fields`` apply to every query.
        """
        if "request_id" in fields:
            raise TypeError("ask_many() chooses the request ids; do not pass request_id")
        request_ids: list[str] = []
        try:
            for bot_id, text in items:
                request_ids.append(self.send(bot_id, text, **fields))
        except BaseException:
            for request_id in request_ids:
                self._unregister(request_id)
            raise
        deadline = time.monotonic() + timeout_s
        results: list[Outcome | ReplyTimeout] = []
        for request_id in request_ids:
            try:
                remaining = max(0.0, deadline - time.monotonic())
                results.append(self._wait(request_id, remaining, timeout_s))
            except ReplyTimeout as timeout:
                results.append(timeout)
        return results

    # -- internals -------------------------------------------------------------------------

    def _register(self, request_id: str, key: bytes) -> _Waiter:
        waiter = _Waiter(key)
        with self._lock:
            if self._failure is not None:
                raise self._failure
            if request_id in self._waiters:
                raise ValueError(f"request {request_id} is already in flight")
            self._waiters[request_id] = waiter
            self._waiting_keys[key] += 1
        return waiter

    def _unregister(self, request_id: str) -> None:
        with self._lock:
            waiter = self._waiters.pop(request_id, None)
            if waiter is not None:
                self._waiting_keys[waiter.key] -= 1
                if self._waiting_keys[waiter.key] <= 0:
                    del self._waiting_keys[waiter.key]

    def _produce(
        self, client: Producer, key: bytes, value: bytes, request_id: str, waiter: _Waiter
    ) -> None:
        topic = self.queries_topic

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                waiter.fail(
                    KafkaUnavailable(f"query {request_id} was not delivered to {topic}: {error}")
                )

        try:
            client.produce(topic, key=key, value=value, on_delivery=delivered)
        except BufferError:
            # The local queue is full: let librdkafka send some, then try once more.
            client.poll(0.5)
            try:
                client.produce(topic, key=key, value=value, on_delivery=delivered)
            except BufferError:
                raise KafkaUnavailable(
                    f"the producer's local queue for {topic} stays full; is Kafka reachable?"
                ) from None

    def _wait(self, request_id: str, timeout_s: float, reported_timeout_s: float) -> Outcome:
        with self._lock:
            waiter = self._waiters.get(request_id)
        if waiter is None:
            raise ValueError(
                f"request {request_id} is not awaited by this client "
                "(not sent by it, or its outcome was already returned)"
            )
        waiter.done.wait(timeout_s)
        self._unregister(request_id)
        # Checked after unregistering: an answer that arrived at the last moment still counts.
        if waiter.outcome is not None:
            return waiter.outcome
        if waiter.error is not None:
            raise waiter.error
        raise ReplyTimeout(request_id, reported_timeout_s)

    def _route_forever(self) -> None:
        listener, sender = self._consumer, self._producer
        assert listener is not None
        assert sender is not None
        try:
            while not self._stop.is_set():
                # Serves the delivery reports of sent queries, so failures reach waiters.
                sender.poll(0)
                # poll() returns at the first record, where consume() would wait out its
                # timeout to fill a batch: that wait would add to every round trip.
                first = listener.poll(POLL_TIMEOUT_S)
                if first is None:
                    continue
                self._route(first)
                for message in listener.consume(POLL_BATCH, 0):
                    self._route(message)
        except Exception as exc:
            logger.exception("the FleetClient router stopped")
            self._fail_all(exc)

    def _route(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            logger.debug("consumer event on %s: %s", message.topic(), error)
            return
        key = message.key()
        value = message.value()
        with self._lock:
            if key is None or value is None or key not in self._waiting_keys:
                return
        record = _json_object(value)
        request_id = record.get("request_id") if record is not None else None
        if record is None or not isinstance(request_id, str):
            return
        with self._lock:
            waiter = self._waiters.get(request_id)
        if waiter is None or waiter.done.is_set():
            return
        kind: OutcomeKind = "reply" if message.topic() == self.replies_topic else "dead_letter"
        _check_contract(kind, record, message)
        latency_ms = (time.monotonic() - waiter.sent_at) * 1000.0
        waiter.complete(Outcome(request_id, kind, record, latency_ms))

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            if self._failure is None:
                self._failure = error
            waiters = list(self._waiters.values())
        for waiter in waiters:
            waiter.fail(error)


def connect_producer(sender: Producer, topic: str, timeout_s: float) -> None:
    """Block until ``sender`` has a broker connection and ``topic``'s metadata.

    librdkafka connects lazily: without this, the first query would wait for the
    connection, the metadata and the idempotent producer id after being stamped.
    """
    try:
        sender.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailable(f"the producer could not reach Kafka: {exc}") from None


def _json_object(value: bytes) -> dict[str, Any] | None:
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def _check_contract(kind: OutcomeKind, record: dict[str, Any], message: Message) -> None:
    """Warn about an answer that breaks its contract, but still hand it over.

    The caller is better served by what the worker said than by a timeout, and a
    worker newer than this client may use a value (a reason code) it does not know yet.
    """
    contract = MessageKind.REPLY if kind == "reply" else MessageKind.DEAD_LETTER
    try:
        validate(contract, record)
    except ContractError as exc:
        logger.warning(
            "%s at %s[%s]@%s breaks the %s v1 contract (%s); returning it anyway",
            kind,
            message.topic(),
            message.partition(),
            message.offset(),
            contract.value,
            exc,
        )
