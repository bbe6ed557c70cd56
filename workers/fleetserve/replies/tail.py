"""Follow the replies topic: a generator of matching replies that commits only what was handled.

A yielded reply counts as handled once the caller asks for the next one. With a consumer
group, handled positions are committed (every few seconds and at the end), so a daily
relabeling job resumes exactly after the last reply it printed; a reply the caller was
still handling when it stopped (Ctrl-C mid-line, a broken pipe) is printed again next
time rather than lost. Replies the filter rejects count as handled at once.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaException,
    Message,
    TopicPartition,
)

from fleetserve.config.settings import KafkaSettings
from fleetserve.contracts.codec import decode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.errors import ContractError, KafkaUnavailable
from fleetserve.kafka.clients import consumer
from fleetserve.kafka.offsets import topic_partitions
from fleetserve.replies.filters import ReplyFilter

logger = logging.getLogger(__name__)

METADATA_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class TailOptions:
    """How to follow the topic and when to stop.

    ``group``: join it and commit handled replies; None reads without a group and
    commits nothing. ``from_beginning``: start at the oldest retained reply instead of
    the end; with a group it only applies while the group has no committed position.
    ``limit``: stop once this many matching replies were handled. ``idle_exit_s``: stop
    after this long without any record (counted from the partition assignment, so a
    slow group join is not mistaken for an idle topic).
    """

    group: str | None = None
    from_beginning: bool = False
    limit: int | None = None
    idle_exit_s: float | None = None
    poll_timeout_s: float = 0.2
    join_timeout_s: float = 60.0
    commit_interval_s: float = 5.0


@dataclass(frozen=True, slots=True)
class TailedReply:
    """One decoded reply v1 and where it was read."""

    reply: dict[str, Any]
    topic: str
    partition: int
    offset: int


def tail_replies(
    kafka: KafkaSettings,
    topic: str,
    reply_filter: ReplyFilter | None = None,
    options: TailOptions | None = None,
) -> Iterator[TailedReply]:
    """Replies on ``topic`` that pass ``reply_filter``, in partition order, until a stop.

    Stops at ``options.limit`` (after the last reply is handled), after
    ``options.idle_exit_s`` without records, or when the caller closes the generator.
    Invalid records are logged and skipped.
    """
    options = options or TailOptions()
    session = _TailSession(consumer(kafka, _consumer_config(options)), topic, options)
    try:
        session.attach()
        yield from session.replies(reply_filter or ReplyFilter())
    finally:
        session.finish()


class _TailSession:
    """The consumer of one tail, its handled positions and its stop conditions."""

    def __init__(self, client: Consumer, topic: str, options: TailOptions) -> None:
        self.client = client
        self.topic = topic
        self.options = options
        self.started_at = time.monotonic()
        self.assigned_at: float | None = None
        self.last_record_at: float | None = None
        self.last_commit_at = self.started_at
        self.handled: dict[int, int] = {}  # partition -> next offset to read
        self.uncommitted = False

    def attach(self) -> None:
        if self.options.group is None:
            # No group to join: assign every partition directly, which is also faster.
            start = OFFSET_BEGINNING if self.options.from_beginning else OFFSET_END
            partitions = topic_partitions(self.client, self.topic, METADATA_TIMEOUT_S)
            self.client.assign([TopicPartition(self.topic, p, start) for p in partitions])
            self.assigned_at = time.monotonic()
            return
        topic_partitions(self.client, self.topic, METADATA_TIMEOUT_S)  # fail fast if missing
        self.client.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def replies(self, reply_filter: ReplyFilter) -> Iterator[TailedReply]:
        matched = 0
        for message in self._records():
            reply = _decode_reply(message)
            if reply is not None and reply_filter.matches(reply):
                yield TailedReply(
                    reply, self.topic, message.partition() or 0, message.offset() or 0
                )
                matched += 1
            # Reached only when the caller asked for more, so it handled the reply.
            self._mark_handled(message)
            if self.options.limit is not None and matched >= self.options.limit:
                return
            self._commit_now_and_then()

    def finish(self) -> None:
        try:
            self._commit(asynchronous=False)
        except KafkaException as exc:
            logger.error(
                "could not commit the replies handled so far for group %s (%s); "
                "the next run prints them again",
                self.options.group,
                exc,
            )
        finally:
            self.client.close()

    def _records(self) -> Iterator[Message]:
        while True:
            message = self.client.poll(self.options.poll_timeout_s)
            if message is None:
                if self._idle():
                    return
                self._commit_now_and_then()
                continue
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                logger.debug("consumer event on %s: %s", self.topic, error)
                continue
            self.last_record_at = time.monotonic()
            yield message

    def _idle(self) -> bool:
        now = time.monotonic()
        if self.assigned_at is None:
            if now - self.started_at > self.options.join_timeout_s:
                raise KafkaUnavailable(
                    f"joining consumer group {self.options.group} for {self.topic} took "
                    f"longer than {self.options.join_timeout_s:g}s"
                )
            return False
        if self.options.idle_exit_s is None:
            return False
        quiet_since = max(self.assigned_at, self.last_record_at or self.assigned_at)
        return now - quiet_since >= self.options.idle_exit_s

    def _mark_handled(self, message: Message) -> None:
        self.handled[message.partition() or 0] = (message.offset() or 0) + 1
        self.uncommitted = True

    def _commit_now_and_then(self) -> None:
        if time.monotonic() - self.last_commit_at >= self.options.commit_interval_s:
            self._commit(asynchronous=True)

    def _commit(self, *, asynchronous: bool) -> None:
        self.last_commit_at = time.monotonic()
        if self.options.group is None or not self.uncommitted:
            return
        offsets = [TopicPartition(self.topic, p, o) for p, o in sorted(self.handled.items())]
        self.uncommitted = False
        if asynchronous:
            self.client.commit(offsets=offsets, asynchronous=True)
            return
        for committed in self.client.commit(offsets=offsets, asynchronous=False):
            if committed.error is not None:
                raise KafkaException(committed.error)

    def _on_assign(self, _client: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned_at = time.monotonic()
        logger.debug("assigned %s", [p.partition for p in partitions])

    def _on_revoke(self, _client: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member takes these over: hand it our position, then forget them.
        try:
            self._commit(asynchronous=False)
        except KafkaException as exc:
            logger.warning("commit before a rebalance failed: %s", exc)
        for revoked in partitions:
            self.handled.pop(revoked.partition, None)


def _consumer_config(options: TailOptions) -> dict[str, Any]:
    return {
        "group.id": options.group or f"fleetserve-replies-tail-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if options.from_beginning else "latest",
        # Workers publish replies in transactions; an aborted batch never happened.
        "isolation.level": "read_committed",
    }


def _decode_reply(message: Message) -> dict[str, Any] | None:
    value = message.value()
    try:
        return decode(MessageKind.REPLY, value) if value is not None else None
    except ContractError as exc:
        logger.warning(
            "skipping an invalid reply at %s[%s]@%s: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            exc,
        )
        return None
