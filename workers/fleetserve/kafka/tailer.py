"""Keep a table live from a compacted topic: read it from the beginning, then follow it.

The deployments table and the crash ledger are both "the latest record per key"; each
gives a :class:`TopicTailer` what to do with one record, and the tailer does the rest:
its own consumer on its own thread, no group offsets (a restart rebuilds the table), a
clear "caught up" signal, retries while the topic is missing, and a health flag.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from fleetserve.config.settings import KafkaSettings
from fleetserve.errors import ContractError, Disposition, classify
from fleetserve.kafka import scan
from fleetserve.kafka.clients import consumer

logger = logging.getLogger(__name__)

# The poll timeout only bounds how quickly stop() and the idle check react (a poll returns
# as soon as records arrive); the broker's fetch wait bounds how long a record can sit.
POLL_TIMEOUT_S = 0.1
BATCH_SIZE = 500
METADATA_TIMEOUT_S = 5.0
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0
JOIN_TIMEOUT_S = 10.0

CONSUMER_CONFIG: Mapping[str, Any] = {
    # Offsets are never committed: a restart always rebuilds the table from the beginning.
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "fetch.wait.max.ms": 100,
    "fetch.error.backoff.ms": 100,
}

Handler = Callable[[Message], None]
"""Applies one record; raises ContractError for a record to skip (logged, not fatal)."""


class TopicTailer:
    """Hands every record of ``topic`` to ``handle``, from the beginning, on a daemon thread.

    The consumer lives entirely on the tailer's own thread (librdkafka handles must not be
    closed from another thread while polling); ``stop()`` asks it to finish and joins it.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        handle: Handler,
        *,
        name: str,
        idle_s: float = 0.5,
    ) -> None:
        self._kafka = kafka
        self._topic = topic
        self._handle_record = handle
        self._name = name
        self._idle_s = idle_s
        self._stopping = threading.Event()
        self._caught_up = threading.Event()
        self._fatal: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start tailing on a daemon thread."""
        if self._thread is not None:
            raise RuntimeError(f"a {self._name} tailer starts only once")
        self._thread = threading.Thread(
            target=self._run, name=f"{self._name}-tailer[{self._topic}]", daemon=True
        )
        self._thread.start()

    @property
    def caught_up(self) -> bool:
        """Past the high watermarks seen at start and idle for ``idle_s``; stays True."""
        return self._caught_up.is_set()

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Block until caught up; False on timeout or when the tailer has died."""
        deadline = time.monotonic() + timeout_s
        while not self._caught_up.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.healthy:
                return False
            self._caught_up.wait(min(remaining, POLL_TIMEOUT_S))
        return True

    @property
    def healthy(self) -> bool:
        """The thread runs and has met no fatal error."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self._fatal is None

    def stop(self) -> None:
        """Stop the thread and close its consumer; safe to call more than once."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                logger.warning("%s tailer for %s did not stop in time", self._name, self._topic)

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        client: Consumer | None = None
        try:
            # A unique group: every process reads every record, and nothing is committed.
            group = f"fleetserve-{self._name}-{uuid.uuid4().hex[:12]}"
            client = consumer(self._kafka, {**CONSUMER_CONFIG, "group.id": group})
            catch_up = self._assign(client)
            if catch_up is not None:
                self._tail(client, catch_up)
        except Exception as exc:  # the thread's last resort: report, never vanish silently
            self._fatal = exc
            logger.exception("%s tailer for %s failed", self._name, self._topic)
        finally:
            if client is not None:
                client.close()

    def _assign(self, client: Consumer) -> scan.CatchUp | None:
        """Assign every partition; retries while the topic is missing. None when stopped."""
        delay = RETRY_FIRST_S
        while not self._stopping.is_set():
            try:
                ends = scan.assign_from_beginning(client, self._topic, METADATA_TIMEOUT_S)
            except Exception as exc:
                if is_fatal(exc):
                    raise
                logger.warning("%s tailer waits for %s: %s", self._name, self._topic, exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            logger.info("tailing %s from the beginning; high watermarks %s", self._topic, ends)
            return scan.CatchUp(ends, self._idle_s)
        return None

    def _tail(self, client: Consumer, catch_up: scan.CatchUp) -> None:
        while not self._stopping.is_set():
            for message in client.consume(BATCH_SIZE, POLL_TIMEOUT_S):
                self._handle(message, catch_up)
            if not self._caught_up.is_set() and catch_up.done(time.monotonic()):
                self._caught_up.set()
                logger.info("%s caught up with %s", self._name, self._topic)

    def _handle(self, message: Message, catch_up: scan.CatchUp) -> None:
        error = message.error()
        if error is not None:
            if is_fatal(KafkaException(error)):
                raise KafkaException(error)
            logger.warning("%s consumer error on %s: %s", self._name, self._topic, error.str())
            return
        catch_up.observe(message.partition() or 0, message.offset() or 0, time.monotonic())
        try:
            self._handle_record(message)
        except ContractError as exc:
            logger.warning(
                "skipping an invalid %s record at %s[%s]@%s: %s",
                self._name,
                message.topic(),
                message.partition(),
                message.offset(),
                exc,
            )


def is_fatal(exc: BaseException) -> bool:
    """Whether a tailer must give up on ``exc``.

    ``classify`` calls a KafkaException fatal unless librdkafka flags it retriable, but
    librdkafka sets no flags on consumer and metadata errors (a timed-out metadata
    request is ``_TRANSPORT`` with neither), and the client reconnects by itself. So for
    Kafka errors only librdkafka's own fatal verdict counts; anything else goes through
    ``classify`` (KafkaUnavailable for a missing topic is retriable).
    """
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        error: KafkaError = exc.args[0]
        return bool(error.fatal()) or error.code() == KafkaError._FATAL
    return classify(exc) is Disposition.FATAL
