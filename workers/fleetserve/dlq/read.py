"""Read a topic to its end without a consumer group, and decode dead letters from it.

"The end" is decided by end-of-partition events only, never by comparing offsets with
watermarks: Tansu under-reports a partition's high watermark when its last batch holds
several records, and a transactional partition ends in a commit marker that no record
offset ever reaches. A partition counts as done at an end event at or past the high
watermark seen at the start (an under-reported one only makes that easier to reach), so
records appended while reading are not waited for.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Generator, Iterator, Mapping
from typing import Any, Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from fleetserve.client.offsets import watermarks
from fleetserve.config import KafkaSettings
from fleetserve.dlq.records import DeadLetterRecord, decode_dead_letter
from fleetserve.errors import KafkaUnavailable
from fleetserve.kafka.clients import consumer
from fleetserve.kafka.records import InboundRecord

logger = logging.getLogger(__name__)

METADATA_TIMEOUT_S: Final = 10.0
POLL_S: Final = 0.2
STALL_TIMEOUT_S: Final = 30.0
"""Give up when neither a record nor an end event arrived for this long."""
SEEK_MARGIN_MS: Final = 5 * 60_000
"""``--since`` seeks this much earlier by record timestamp: the Kafka timestamp and
``dead_lettered_at_ms`` come from different clocks when the topic uses LogAppendTime."""


def read_dead_letters(
    kafka: KafkaSettings, topic: str, *, since_ms: int | None = None
) -> Generator[DeadLetterRecord, None, None]:
    """Every committed record of the dead-letter topic, decoded, up to its end at the start.

    ``since_ms`` skips, per partition, what was written well before that time (records
    before it may still come: callers filter on ``dead_lettered_at_ms`` themselves).
    Close the iterator (``contextlib.closing``) when stopping early.
    """
    seek_ms = None if since_ms is None else since_ms - SEEK_MARGIN_MS
    for record in read_to_end(kafka, topic, since_ms=seek_ms):
        yield decode_dead_letter(record)


def read_to_end(
    kafka: KafkaSettings,
    topic: str,
    *,
    since_ms: int | None = None,
    stall_timeout_s: float = STALL_TIMEOUT_S,
) -> Iterator[InboundRecord]:
    """The committed records of every partition of ``topic``, from the beginning (or from the
    first record timestamped at or after ``since_ms``) to each partition's end."""
    client = _reader(kafka)
    try:
        marks = watermarks(client, topic, METADATA_TIMEOUT_S)
        starts = _start_offsets(client, topic, marks, since_ms)
        client.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        ends = {p: marks[p][1] for p in starts}
        yield from _drain(client, topic, ends, stall_timeout_s)
    finally:
        client.close()


def read_one(kafka: KafkaSettings, topic: str, partition: int, offset: int) -> InboundRecord | None:
    """The committed record at ``partition:offset`` of ``topic``, or None if there is none
    (never written, removed by retention, a transaction marker or an aborted record)."""
    # Out of range must not silently jump to the end and show some other record.
    client = _reader(kafka, {"auto.offset.reset": "error"})
    try:
        marks = watermarks(client, topic, METADATA_TIMEOUT_S)
        if partition not in marks:
            raise KafkaUnavailable(f"{topic} has no partition {partition} (it has {sorted(marks)})")
        low, high = marks[partition]
        if offset < low or high <= low:
            return None
        # Never assign past the reported end: Tansu answers a fetch there with nothing at
        # all, not even an end event. Its reported end may be too low, so start at most
        # there and read forward to the offset or to the true end.
        client.assign([TopicPartition(topic, partition, min(offset, high))])
        return _record_at(client, topic, offset)
    finally:
        client.close()


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
            return InboundRecord.from_message(message) if found == offset else None
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
            "group.id": f"fleetserve-dlq-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            # Dead letters and ledger entries are written in transactions.
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
    client: Consumer, topic: str, ends: dict[int, int], stall_timeout_s: float
) -> Iterator[InboundRecord]:
    pending = dict(ends)
    last_progress = time.monotonic()
    while pending:
        message = client.poll(POLL_S)
        now = time.monotonic()
        if message is None:
            if now - last_progress > stall_timeout_s:
                behind = ", ".join(f"{topic}[{p}]" for p in sorted(pending))
                raise KafkaUnavailable(
                    f"reading {topic} stalled for {stall_timeout_s:g}s before its end "
                    f"(behind: {behind}); an open transaction or an unreachable broker?"
                )
            continue
        last_progress = now
        partition = message.partition() or 0
        if message.error() is not None:
            _on_event(message, pending)
        elif partition in pending:  # records of a finished partition are newer than the run
            yield InboundRecord.from_message(message)


def _on_event(message: Message, pending: dict[int, int]) -> None:
    error: KafkaError | None = message.error()
    assert error is not None
    partition = message.partition() or 0
    if error.code() == KafkaError._PARTITION_EOF:
        if (message.offset() or 0) >= pending.get(partition, 0):
            pending.pop(partition, None)
        return
    if error.fatal():
        raise KafkaException(error)
    logger.debug("consumer event on %s[%s]: %s", message.topic(), partition, error.str())
