"""Sort a partition's record batches into committed, aborted and open records. Test-only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from support.record_batches import KafkaLogError, RecordBatch

ABORT = 0
COMMIT = 1


@dataclass(frozen=True)
class LogRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int
    producer_id: int
    transactional: bool


@dataclass(frozen=True)
class CommittedLog:
    """Data records by fate, each list in (partition, offset) order; control records omitted."""

    committed: list[LogRecord]
    aborted: list[LogRecord]
    open: list[LogRecord]

    def values(
        self, which: Literal["committed", "aborted", "open"] = "committed"
    ) -> list[bytes | None]:
        """The values of ``committed``, ``aborted`` or ``open``, in order."""
        records: list[LogRecord] = getattr(self, which)
        return [record.value for record in records]


def _log_records(topic: str, partition: int, batch: RecordBatch) -> Iterator[LogRecord]:
    for record in batch.records:
        yield LogRecord(
            topic=topic,
            partition=partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=record.headers,
            timestamp_ms=record.timestamp_ms,
            producer_id=batch.producer_id,
            transactional=batch.transactional,
        )


def by_position(record: LogRecord) -> tuple[int, int]:
    return record.partition, record.offset


def apply_markers(topic: str, partition: int, batches: Iterable[RecordBatch]) -> CommittedLog:
    """Sort one partition's batches (in offset order) into committed, aborted and open records.

    Records of a transactional producer are held until its next control marker, with the
    producer epoch taken into account, as Apache Kafka's transaction state does:

    * a marker of epoch ``E`` ends the held records of epochs up to ``E`` (a coordinator
      that fences a producer writes the ABORT with the bumped epoch; Tansu writes it with
      the old one). Held records of a later epoch stay held: a late marker of a fenced
      incarnation must not end its successor's transaction;
    * data of epoch ``E`` arriving while records of an earlier epoch are still held means
      that earlier transaction was fenced: it can never commit, so those records are
      aborted even if its ABORT marker is missing from this partition.

    Without the second rule, an aborted record whose marker went astray was committed by
    the next incarnation's COMMIT (a "committed" duplicate the worker never made).
    """
    committed: list[LogRecord] = []
    aborted: list[LogRecord] = []
    pending: dict[int, list[tuple[int, LogRecord]]] = {}  # producer id -> (epoch, record)

    def end(producer_id: int, epoch: int, into: list[LogRecord]) -> None:
        held = pending.pop(producer_id, [])
        into.extend(record for record_epoch, record in held if record_epoch <= epoch)
        later = [(e, record) for e, record in held if e > epoch]
        if later:
            pending[producer_id] = later

    for batch in batches:
        if batch.control:
            for marker in batch.control_types():
                if marker not in (ABORT, COMMIT):
                    raise KafkaLogError(
                        f"{topic}/{partition} offset {batch.base_offset}: "
                        f"unknown control record type {marker}"
                    )
                end(batch.producer_id, batch.producer_epoch, committed if marker else aborted)
        elif batch.transactional:
            held = pending.get(batch.producer_id, [])
            if any(epoch < batch.producer_epoch for epoch, _ in held):
                end(batch.producer_id, batch.producer_epoch - 1, aborted)  # fenced, unmarked
            records = [(batch.producer_epoch, r) for r in _log_records(topic, partition, batch)]
            pending.setdefault(batch.producer_id, []).extend(records)
        else:
            committed.extend(_log_records(topic, partition, batch))
    still_open = [record for held in pending.values() for _, record in held]
    return CommittedLog(
        committed=sorted(committed, key=by_position),
        aborted=sorted(aborted, key=by_position),
        open=sorted(still_open, key=by_position),
    )


def fates(log: CommittedLog) -> tuple[list[tuple[int, bytes | None]], ...]:
    """(offset, value) pairs of committed, aborted and open records."""
    return tuple(
        [(record.offset, record.value) for record in records]
        for records in (log.committed, log.aborted, log.open)
    )
