"""Read a topic's log the way Apache Kafka defines ``read_committed``. Test-only.

Why this exists: the Tansu 0.6.0 broker our tests run against writes transaction
control markers (ABORT / COMMIT) into partitions, but its Fetch response never
fills the ``AbortedTransactions`` list. Apache Kafka's consumers rely on that
list to drop the records of aborted transactions, so a librdkafka consumer with
``isolation.level=read_committed`` on Tansu is handed the records of *aborted*
transactions too. Fault tests (a worker SIGKILLed mid-transaction) must count
outputs in the committed log exactly, so they cannot trust such a consumer.

This module is a minimal Kafka wire-protocol client (stdlib ``socket`` and
``struct`` only) that fetches raw RecordBatch v2 data with
``isolation_level=READ_UNCOMMITTED`` (everything up to the high watermark,
control batches included) and applies the markers itself:

* records of non-transactional batches are committed at once;
* records of a transactional batch from producer P are held until P's next
  control marker in that partition: COMMIT makes them committed, ABORT drops
  them into ``aborted``;
* records still held at the end belong to open transactions (``open``).

``committed`` is the log as it is once every open transaction has ended: a live
``read_committed`` consumer would not yet see records past the first offset of
an open transaction (the last stable offset), even committed ones.

Protocol versions: ApiVersions v0, Metadata v4 (v4 is the first that can say
"do not auto-create the topic") and Fetch v4 (the first with an isolation level
and RecordBatch v2; all three are non-flexible). Tansu 0.6.0 answers ApiVersions
with Metadata 0-12 and Fetch 0-17. Each partition is fetched from the leader
that Metadata names (Tansu is single-node, so that is the bootstrap broker).
Compression: none and gzip; snappy, lz4 and zstd raise :class:`KafkaLogError`.
Reading starts at offset 0, so a log whose start has moved on (retention) fails
with OFFSET_OUT_OF_RANGE.

Seen on Tansu 0.6.0: each marker is a one-record control batch at its own offset
in every partition the transaction wrote to; when a ``transactional.id`` comes
back (``init_transactions``), the old transaction's ABORT markers carry the old
producer epoch, and the new producer keeps the producer id with the epoch
bumped. Markers are matched by producer id alone, as Apache Kafka's aborted
transaction index is, and by epoch as :func:`apply_markers` says. Tansu answers a Fetch with
``max_wait_ms=0`` with no topics at all, hence the 1 ms wait below; and once a partition
holds a few thousand batches it answers a 1 ms fetch below the high watermark with no
records (it gives up before it has found the offset), so an empty answer quadruples the
wait, up to 5 s, for the rest of that partition.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from support.committed_log import CommittedLog, LogRecord, apply_markers, by_position
from support.kafka_wire import (
    FETCH_MAX_WAIT_MS,
    FIRST_MAX_BYTES,
    MAX_FETCH_WAIT_MS,
    MAX_MAX_BYTES,
    RETRY_SLEEP_S,
    Connection,
    host_port,
)
from support.record_batches import (
    KafkaLogError,
    RecordBatch,
    Retriable,
    parse_record_batches,
)


class _Session:
    """Connections by broker address, opened on first use, all closed at the end."""

    def __init__(self, bootstrap: str, deadline: float) -> None:
        self.bootstrap = [host_port(address) for address in bootstrap.split(",") if address]
        if not self.bootstrap:
            raise ValueError(f"no broker address in bootstrap {bootstrap!r}")
        self.deadline = deadline
        self.connections: dict[tuple[str, int], Connection] = {}

    def connection(self, address: tuple[str, int]) -> Connection:
        if address not in self.connections:
            connection = Connection(address, self.deadline)
            self.connections[address] = connection
            connection.check_api_versions()
        return self.connections[address]

    def drop(self, address: tuple[str, int]) -> None:
        connection = self.connections.pop(address, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()
        self.connections.clear()

    def retry(self, what: str, error: KafkaLogError) -> None:
        """Sleep before another try, or raise if the deadline has passed."""
        if time.monotonic() + RETRY_SLEEP_S >= self.deadline:
            raise KafkaLogError(f"{what}: still failing at the deadline: {error}") from error
        time.sleep(RETRY_SLEEP_S)

    def leaders(self, topic: str) -> dict[int, tuple[str, int]]:
        """The address of each partition's leader, asking each bootstrap broker in turn."""
        attempt = 0
        while True:
            address = self.bootstrap[attempt % len(self.bootstrap)]
            attempt += 1
            try:
                brokers, partitions = self.connection(address).metadata(topic)
                return {meta.partition: brokers[meta.leader] for meta in partitions}
            except (Retriable, KeyError) as exc:  # KeyError: a leader not among the brokers
                self.retry(f"Metadata for {topic!r}", KafkaLogError(str(exc)))
            except OSError as exc:
                self.drop(address)
                self.retry(f"Metadata for {topic!r} from {address}", KafkaLogError(str(exc)))

    def partition_batches(
        self, topic: str, partition: int, leader: tuple[str, int]
    ) -> list[RecordBatch]:
        """Every batch of one partition from offset 0 to the high watermark."""
        batches: list[RecordBatch] = []
        offset = 0
        max_bytes = FIRST_MAX_BYTES
        wait_ms = FETCH_MAX_WAIT_MS
        what = f"reading {topic}/{partition} at offset {{}}"
        while True:
            try:
                fetched = self.connection(leader).fetch(
                    topic, partition, offset, max_bytes, wait_ms
                )
            except Retriable as exc:
                self.retry(what.format(offset), exc)
                continue
            if offset >= fetched.high_watermark:
                return batches
            new = [
                batch
                for batch in parse_record_batches(fetched.records)
                if batch.last_offset >= offset
            ]
            if new:
                batches.extend(new)
                offset = new[-1].last_offset + 1
            elif len(fetched.records) >= max_bytes and max_bytes < MAX_MAX_BYTES:
                max_bytes *= 2  # one batch bigger than we asked for, cut short
            elif not fetched.records and wait_ms < MAX_FETCH_WAIT_MS:
                # Below the high watermark and nothing came back: Tansu gives up on a long
                # partition before it has gathered a response. Give it longer each time.
                wait_ms = min(wait_ms * 4, MAX_FETCH_WAIT_MS)
            else:
                self.retry(
                    what.format(offset),
                    KafkaLogError(
                        f"no complete batch below the high watermark {fetched.high_watermark} "
                        f"({len(fetched.records)} bytes of records)"
                    ),
                )


def fetch_batches(
    bootstrap: str,
    topic: str,
    partitions: Sequence[int] | None = None,
    *,
    timeout_s: float = 10.0,
) -> dict[int, list[RecordBatch]]:
    """Every record batch (control batches too) of ``partitions`` (default all), by partition."""
    session = _Session(bootstrap, time.monotonic() + timeout_s)
    try:
        leaders = session.leaders(topic)
        wanted = sorted(leaders) if partitions is None else list(partitions)
        unknown = sorted(set(wanted) - set(leaders))
        if unknown:
            raise KafkaLogError(f"{topic!r} has no partition {unknown} (it has {sorted(leaders)})")
        return {p: session.partition_batches(topic, p, leaders[p]) for p in wanted}
    finally:
        session.close()


def read_committed_log(
    bootstrap: str,
    topic: str,
    *,
    partitions: Sequence[int] | None = None,
    timeout_s: float = 10.0,
) -> CommittedLog:
    """The records of ``topic`` (all partitions unless told) by their transactions' fate."""
    committed: list[LogRecord] = []
    aborted: list[LogRecord] = []
    still_open: list[LogRecord] = []
    for partition, batches in fetch_batches(
        bootstrap, topic, partitions, timeout_s=timeout_s
    ).items():
        log = apply_markers(topic, partition, batches)
        committed += log.committed
        aborted += log.aborted
        still_open += log.open
    return CommittedLog(
        committed=sorted(committed, key=by_position),
        aborted=sorted(aborted, key=by_position),
        open=sorted(still_open, key=by_position),
    )
