"""Read topics from the beginning: to their end now, one record, or a live table's catch-up.

One reader serves every "read the whole topic" in fleetserve (dead letters, the replay
ledger, the deployments table, shadow reports): each partition of each topic is assigned
without a consumer group, read ``read_committed``, and done at its end-of-partition event
at or past the high watermark seen at the start (see ``devbroker.py`` for why the event
and not the offsets decides).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from typing import Any, Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from fleetserve.config.settings import KafkaSettings
from fleetserve.core.records import InboundRecord, Partition
from fleetserve.errors import KafkaUnavailable
from fleetserve.kafka import devbroker
from fleetserve.kafka.clients import consumer
from fleetserve.kafka.offsets import log_ends
from fleetserve.kafka.records import inbound_record

logger = logging.getLogger(__name__)

METADATA_TIMEOUT_S: Final = 10.0
POLL_S: Final = 0.2
STALL_TIMEOUT_S: Final = 30.0
"""Give up when neither a record nor an end event arrived for this long."""


def read_to_end(
    kafka: KafkaSettings,
    topics: Sequence[str],
    *,
    since_ms: int | None = None,
    stall_timeout_s: float = STALL_TIMEOUT_S,
    timeout_s: float | None = None,
    settle_s: float = 0.0,
) -> Generator[InboundRecord, None, None]:
    """The committed records of every partition of ``topics``, from the beginning (or the
    first record timestamped at or after ``since_ms``) to each partition's end now.

    ``timeout_s`` bounds the whole read; ``stall_timeout_s`` a wait with no progress.
    ``settle_s`` also waits that long with nothing new once every end was reached, for
    topics whose ends a broker under-reports (devbroker.COMPACTED_ENDS_UNDER_REPORT).
    Close the iterator (``contextlib.closing``) when stopping early.
    """
    client = _reader(kafka)
    try:
        ends: dict[Partition, int] = {}
        for topic, marks in log_ends(kafka, topics, METADATA_TIMEOUT_S).items():
            starts = _start_offsets(client, topic, marks, since_ms)
            ends.update({(topic, p): marks[p][1] for p in starts})
            client.incremental_assign(
                [TopicPartition(topic, p, offset) for p, offset in starts.items()]
            )
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        yield from _drain(client, ends, stall_timeout_s, deadline, settle_s)
    finally:
        client.close()


def read_one(kafka: KafkaSettings, topic: str, partition: int, offset: int) -> InboundRecord | None:
    """The committed record at ``partition:offset`` of ``topic``, or None if there is none
    (never written, removed by retention, a transaction marker or an aborted record)."""
    # Out of range must not silently jump to the end and show some other record.
    client = _reader(kafka, {"auto.offset.reset": "error"})
    try:
        marks = log_ends(kafka, [topic], METADATA_TIMEOUT_S)[topic]
        if partition not in marks:
            raise KafkaUnavailable(f"{topic} has no partition {partition} (it has {sorted(marks)})")
        low, high = marks[partition]
        if offset < low or high <= low:
            return None
        client.assign([TopicPartition(topic, partition, devbroker.safe_start(offset, high))])
        return _record_at(client, topic, offset)
    finally:
        client.close()


def assign_from_beginning(client: Consumer, topic: str, timeout_s: float) -> dict[int, int]:
    """Assign every partition of ``topic`` from offset 0; each partition's high watermark now.

    Raises KafkaUnavailable when the topic does not exist (the message says how to fix it).
    """
    metadata = client.list_topics(topic, timeout=timeout_s)
    partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
    if not partitions:
        raise KafkaUnavailable(f"topic {topic} does not exist; run `fleetserve topics apply`")
    ends: dict[int, int] = {}
    for partition in partitions:
        _low, high = client.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout_s
        )
        ends[partition] = high
    client.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return ends


class CatchUp:
    """Whether a reader that follows a topic from the beginning has caught up with it.

    Caught up means: at or past each partition's high watermark observed at assignment
    *and* no record for ``idle_s`` (devbroker.COMPACTED_ENDS_UNDER_REPORT). Times are
    ``time.monotonic()`` seconds passed in by the caller.
    """

    def __init__(self, ends: Mapping[int, int], idle_s: float, now: float | None = None) -> None:
        self.ends = dict(ends)
        self.idle_s = idle_s
        self._positions = dict.fromkeys(self.ends, -1)
        self._last_record = time.monotonic() if now is None else now

    def observe(self, partition: int, offset: int, now: float) -> None:
        """A record at ``offset`` of ``partition`` was read at ``now``."""
        self._positions[partition] = max(self._positions.get(partition, -1), offset + 1)
        self._last_record = now

    def done(self, now: float) -> bool:
        return self.reached_ends() and now - self._last_record >= self.idle_s

    def reached_ends(self) -> bool:
        return all(end == 0 or self._positions[p] >= end for p, end in self.ends.items())


def _record_at(client: Consumer, topic: str, offset: int) -> InboundRecord | None:
    deadline = time.monotonic() + STALL_TIMEOUT_S
    while time.monotonic() < deadline:
        message = client.poll(POLL_S)
        if message is None:
            continue
        error = message.error()
        if error is None:
            found = message.offset() or 0
            if found < offset:
                continue
            return inbound_record(message) if found == offset else None
        if error.code() in (KafkaError._PARTITION_EOF, KafkaError._AUTO_OFFSET_RESET):
            return None
        if error.fatal():
            raise KafkaException(error)
    raise KafkaUnavailable(f"reading {topic} at offset {offset} took over {STALL_TIMEOUT_S:g}s")


def _reader(kafka: KafkaSettings, overrides: Mapping[str, Any] | None = None) -> Consumer:
    return consumer(
        kafka,
        {
            # librdkafka wants a group id; no group is joined and nothing is committed.
            "group.id": f"fleetserve-scan-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            # fleetserve writes its topics in transactions: an aborted batch never happened.
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            **(overrides or {}),
        },
    )


def _start_offsets(
    client: Consumer, topic: str, marks: dict[int, tuple[int, int]], since_ms: int | None
) -> dict[int, int]:
    """Where to start each partition that has anything to read."""
    non_empty = [p for p, (low, high) in sorted(marks.items()) if high > low]
    if since_ms is None or not non_empty:
        return dict.fromkeys(non_empty, OFFSET_BEGINNING)
    try:
        found = client.offsets_for_times(
            [TopicPartition(topic, p, max(since_ms, 0)) for p in non_empty],
            timeout=METADATA_TIMEOUT_S,
        )
    except KafkaException as exc:
        # Only a shortcut: reading everything and filtering gives the same answer.
        logger.debug("offsets_for_times on %s failed (%s); reading from the start", topic, exc)
        return dict.fromkeys(non_empty, OFFSET_BEGINNING)
    starts: dict[int, int] = {}
    for tp in found:
        if tp.error is not None:
            starts[tp.partition] = OFFSET_BEGINNING
        elif tp.offset >= 0:  # -1: nothing at or after since_ms in this partition
            starts[tp.partition] = tp.offset
    return starts


def _drain(
    client: Consumer,
    ends: dict[Partition, int],
    stall_timeout_s: float,
    deadline: float | None,
    settle_s: float,
) -> Generator[InboundRecord, None, None]:
    pending = dict(ends)
    last_progress = last_record = time.monotonic()
    while pending or time.monotonic() - last_record < settle_s:
        message = client.poll(POLL_S)
        now = time.monotonic()
        if deadline is not None and now > deadline:
            raise KafkaUnavailable(
                f"reading did not reach the end in time; behind: {_names(pending)}"
            )
        if message is None:
            if now - last_progress > stall_timeout_s:
                raise KafkaUnavailable(
                    f"reading stalled for {stall_timeout_s:g}s before the end (behind: "
                    f"{_names(pending)}); an open transaction or an unreachable broker?"
                )
            continue
        last_progress = now
        where = (message.topic() or "", message.partition() or 0)
        if message.error() is not None:
            _on_event(message, where, pending)
        elif where in pending or (not pending and settle_s):
            last_record = now
            yield inbound_record(message)  # records of a finished partition are newer


def _on_event(message: Message, where: Partition, pending: dict[Partition, int]) -> None:
    error: KafkaError | None = message.error()
    assert error is not None
    if error.code() == KafkaError._PARTITION_EOF:
        if devbroker.reached_end(message.offset() or 0, pending.get(where, 0)):
            pending.pop(where, None)
        return
    if error.fatal():
        raise KafkaException(error)
    logger.debug("consumer event on %s[%s]: %s", where[0], where[1], error)


def _names(pending: Mapping[Partition, int]) -> str:
    return ", ".join(f"{topic}[{p}]" for topic, p in sorted(pending)) or "(none)"
