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

import gzip
import socket
import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

__all__ = [
    "ABORT",
    "COMMIT",
    "CommittedLog",
    "KafkaLogError",
    "LogRecord",
    "Record",
    "RecordBatch",
    "apply_markers",
    "crc32c",
    "fetch_batches",
    "parse_record_batches",
    "read_committed_log",
]

ABORT = 0
COMMIT = 1

API_FETCH = 1
API_METADATA = 3
API_VERSIONS = 18
FETCH_VERSION = 4
METADATA_VERSION = 4
READ_UNCOMMITTED = 0

CLIENT_ID = b"fleetserve-kafka-log"
BATCH_HEADER_BYTES = 61  # baseOffset .. record count
LOG_OVERHEAD = 12  # baseOffset int64 + batchLength int32
MAGIC_OFFSET = 16  # of the magic byte from the start of a batch
CRC_COVERS_FROM = 21  # attributes .. end of batch
FIRST_MAX_BYTES = 1 << 20
MAX_MAX_BYTES = 1 << 28
RETRY_SLEEP_S = 0.05
# Tansu answers a Fetch with max_wait_ms=0 with no topics at all; at the high watermark
# it waits max_wait_ms even with min_bytes=0. One millisecond is the cheapest that works.
FETCH_MAX_WAIT_MS = 1
MAX_FETCH_WAIT_MS = 5_000

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08  # 1 = LogAppendTime: every record's timestamp is maxTimestamp
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20
COMPRESSION_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

ERROR_NAMES = {
    -1: "UNKNOWN_SERVER_ERROR",
    1: "OFFSET_OUT_OF_RANGE",
    2: "CORRUPT_MESSAGE",
    3: "UNKNOWN_TOPIC_OR_PARTITION",
    5: "LEADER_NOT_AVAILABLE",
    6: "NOT_LEADER_OR_FOLLOWER",
    7: "REQUEST_TIMED_OUT",
    29: "TOPIC_AUTHORIZATION_FAILED",
    35: "UNSUPPORTED_VERSION",
    74: "FENCED_LEADER_EPOCH",
    75: "UNKNOWN_LEADER_EPOCH",
}
# Worth asking again until the deadline: a topic created a moment ago may have no leader yet.
RETRIABLE_ERRORS = frozenset({5, 6, 7, 74, 75})


class KafkaLogError(RuntimeError):
    """The broker answered with an error code, or sent bytes this reader cannot parse."""


class _Truncated(KafkaLogError):
    """Fewer bytes than a field needs."""


class _Retriable(KafkaLogError):
    """An error code that may clear up if asked again."""


def error_name(code: int) -> str:
    return f"{ERROR_NAMES.get(code, 'error')} ({code})"


# -- CRC-32C (Castagnoli), the checksum of RecordBatch v2 ---------------------------------


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    table = _CRC32C_TABLE
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# -- Reading primitive types -----------------------------------------------------------------

_INT8 = struct.Struct(">b")
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_INT64 = struct.Struct(">q")


class _Buffer:
    """A cursor over bytes; every read past the end raises :class:`_Truncated`."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if size < 0 or end > len(self.data):
            raise _Truncated(f"need {size} bytes at {self.pos}, have {self.remaining}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def _unpack(self, fmt: struct.Struct) -> int:
        value: int = fmt.unpack(self.take(fmt.size))[0]
        return value

    def int8(self) -> int:
        return self._unpack(_INT8)

    def int16(self) -> int:
        return self._unpack(_INT16)

    def int32(self) -> int:
        return self._unpack(_INT32)

    def uint32(self) -> int:
        return self._unpack(_UINT32)

    def int64(self) -> int:
        return self._unpack(_INT64)

    def unsigned_varint(self, max_bytes: int) -> int:
        value = 0
        for index in range(max_bytes):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                return value
        raise KafkaLogError(f"varint longer than {max_bytes} bytes at {self.pos}")

    def varint(self) -> int:
        """A zigzag-encoded signed 32-bit integer."""
        raw = self.unsigned_varint(5)
        return (raw >> 1) ^ -(raw & 1)

    def varlong(self) -> int:
        """A zigzag-encoded signed 64-bit integer."""
        raw = self.unsigned_varint(10)
        return (raw >> 1) ^ -(raw & 1)

    def varint_bytes(self) -> bytes | None:
        """A varint length (-1 = null), then that many bytes."""
        length = self.varint()
        return None if length < 0 else self.take(length)

    def nullable_string(self) -> str | None:
        length = self.int16()
        return None if length < 0 else self.take(length).decode("utf-8")

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise KafkaLogError(f"null string at {self.pos}")
        return value

    def nullable_bytes(self) -> bytes | None:
        length = self.int32()
        return None if length < 0 else self.take(length)

    def array_length(self) -> int:
        """An int32 count; -1 (a null array) reads as empty."""
        return max(self.int32(), 0)


# -- RecordBatch v2 ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One record of a batch, with its absolute offset and timestamp."""

    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class RecordBatch:
    base_offset: int
    partition_leader_epoch: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records: tuple[Record, ...]

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def compression(self) -> str:
        code = self.attributes & COMPRESSION_MASK
        return COMPRESSION_NAMES.get(code, f"unknown ({code})")

    @property
    def transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    def control_types(self) -> list[int]:
        """ABORT (0) or COMMIT (1) for each record of a control batch."""
        if not self.control:
            raise KafkaLogError(f"batch at offset {self.base_offset} is not a control batch")
        types = []
        for record in self.records:
            if record.key is None or len(record.key) < 4:
                raise KafkaLogError(
                    f"control record at offset {record.offset} has key {record.key!r}; "
                    "expected version int16 + type int16"
                )
            types.append(_Buffer(record.key, 2).int16())
        return types


def parse_record_batches(data: bytes) -> list[RecordBatch]:
    """The complete batches in ``data`` (a Fetch response's records), in order.

    A partial batch at the end (brokers cut responses at ``max_bytes``) is ignored:
    fetch again from the offset after the last complete batch.
    """
    batches = []
    pos = 0
    while len(data) - pos >= LOG_OVERHEAD:
        batch_length = _INT32.unpack_from(data, pos + 8)[0]
        end = pos + LOG_OVERHEAD + batch_length
        if end > len(data):
            break
        batches.append(_parse_batch(data[pos:end]))
        pos = end
    return batches


def _parse_batch(data: bytes) -> RecordBatch:
    buf = _Buffer(data)
    base_offset = buf.int64()
    if len(data) < BATCH_HEADER_BYTES:
        raise KafkaLogError(f"batch at offset {base_offset} is only {len(data)} bytes long")
    magic = data[MAGIC_OFFSET]
    if magic != 2:
        raise KafkaLogError(
            f"batch at offset {base_offset} has magic {magic}; only RecordBatch v2 is supported"
        )
    buf.int32()  # batchLength: already used to cut ``data``
    partition_leader_epoch = buf.int32()
    buf.int8()  # magic
    crc = buf.uint32()
    actual = crc32c(data[CRC_COVERS_FROM:])
    if crc != actual:
        raise KafkaLogError(
            f"batch at offset {base_offset}: CRC-32C is {actual:#010x}, header says {crc:#010x}"
        )
    attributes = buf.int16()
    last_offset_delta = buf.int32()
    base_timestamp = buf.int64()
    max_timestamp = buf.int64()
    producer_id = buf.int64()
    producer_epoch = buf.int16()
    base_sequence = buf.int32()
    count = buf.int32()
    records_buf = _Buffer(_decompress(attributes, buf.take(buf.remaining), base_offset))
    log_append_time = bool(attributes & TIMESTAMP_TYPE_BIT)
    records = []
    for _ in range(count):
        record = _parse_record(records_buf, base_offset, base_timestamp)
        if log_append_time:
            record = Record(record.offset, max_timestamp, record.key, record.value, record.headers)
        records.append(record)
    if records_buf.remaining:
        raise KafkaLogError(
            f"batch at offset {base_offset}: {records_buf.remaining} bytes after {count} records"
        )
    return RecordBatch(
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        attributes=attributes,
        last_offset_delta=last_offset_delta,
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        records=tuple(records),
    )


def _decompress(attributes: int, payload: bytes, base_offset: int) -> bytes:
    code = attributes & COMPRESSION_MASK
    if code == 0:
        return payload
    if code == 1:
        return gzip.decompress(payload)
    raise KafkaLogError(
        f"batch at offset {base_offset} is compressed with "
        f"{COMPRESSION_NAMES.get(code, f'unknown codec {code}')}; this reader supports only "
        "none and gzip: produce the test topic with compression.type=none or gzip"
    )


def _parse_record(buf: _Buffer, base_offset: int, base_timestamp: int) -> Record:
    length = buf.varint()
    body = _Buffer(buf.take(length))
    body.int8()  # attributes: unused in v2
    timestamp_delta = body.varlong()
    offset_delta = body.varint()
    key = body.varint_bytes()
    value = body.varint_bytes()
    headers = []
    for _ in range(body.varint()):
        header_key = body.varint_bytes()
        if header_key is None:
            raise KafkaLogError(f"record at offset {base_offset + offset_delta}: null header key")
        headers.append((header_key.decode("utf-8"), body.varint_bytes()))
    if body.remaining:
        raise KafkaLogError(
            f"record at offset {base_offset + offset_delta}: {body.remaining} unread bytes"
        )
    return Record(
        offset=base_offset + offset_delta,
        timestamp_ms=base_timestamp + timestamp_delta,
        key=key,
        value=value,
        headers=tuple(headers),
    )


# -- read_committed ----------------------------------------------------------------------------


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


def _by_position(record: LogRecord) -> tuple[int, int]:
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
        committed=sorted(committed, key=_by_position),
        aborted=sorted(aborted, key=_by_position),
        open=sorted(still_open, key=_by_position),
    )


# -- The wire ----------------------------------------------------------------------------------


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]"), int(port)


def _string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _INT16.pack(len(raw)) + raw


@dataclass(frozen=True)
class _PartitionMeta:
    partition: int
    leader: int


@dataclass(frozen=True)
class _FetchedPartition:
    high_watermark: int
    records: bytes


class _Connection:
    """One blocking socket to one broker; requests answered strictly in order."""

    def __init__(self, address: tuple[str, int], deadline: float) -> None:
        self.address = address
        self.deadline = deadline
        self.correlation_id = 0
        self.sock = socket.create_connection(address, timeout=self._time_left())

    def __enter__(self) -> _Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _time_left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out talking to Kafka at {self._where()}")
        return left

    def _where(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def request(self, api_key: int, version: int, body: bytes) -> _Buffer:
        self.correlation_id += 1
        header = (
            _INT16.pack(api_key)
            + _INT16.pack(version)
            + _INT32.pack(self.correlation_id)
            + _INT16.pack(len(CLIENT_ID))
            + CLIENT_ID
        )
        message = header + body
        self.sock.settimeout(self._time_left())
        self.sock.sendall(_INT32.pack(len(message)) + message)
        size = _INT32.unpack(self._receive(4))[0]
        response = _Buffer(self._receive(size))
        correlation_id = response.int32()
        if correlation_id != self.correlation_id:
            raise KafkaLogError(
                f"{self._where()} answered correlation id {correlation_id}, "
                f"expected {self.correlation_id}"
            )
        return response

    def _receive(self, size: int) -> bytes:
        chunks = []
        left = size
        while left:
            self.sock.settimeout(self._time_left())
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise KafkaLogError(f"{self._where()} closed the connection mid-response")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def check_api_versions(self) -> None:
        """Fail clearly if the broker cannot answer the versions this reader speaks."""
        response = self.request(API_VERSIONS, 0, b"")
        error = response.int16()
        if error:
            raise KafkaLogError(f"ApiVersions from {self._where()} failed: {error_name(error)}")
        supported = {}
        for _ in range(response.array_length()):
            api_key, low, high = response.int16(), response.int16(), response.int16()
            supported[api_key] = (low, high)
        for api_key, name, version in (
            (API_METADATA, "Metadata", METADATA_VERSION),
            (API_FETCH, "Fetch", FETCH_VERSION),
        ):
            low, high = supported.get(api_key, (0, -1))
            if not low <= version <= high:
                raise KafkaLogError(
                    f"{self._where()} does not support {name} v{version} "
                    f"(it supports v{low}-v{high})"
                )

    def metadata(self, topic: str) -> tuple[dict[int, tuple[str, int]], list[_PartitionMeta]]:
        """Broker addresses by node id, and the topic's partitions with their leaders."""
        body = _INT32.pack(1) + _string(topic) + b"\x00"  # allow_auto_topic_creation = false
        response = self.request(API_METADATA, METADATA_VERSION, body)
        response.int32()  # throttle_time_ms
        brokers = {}
        for _ in range(response.array_length()):
            node_id, host, port = response.int32(), response.string(), response.int32()
            response.nullable_string()  # rack
            brokers[node_id] = (host, port)
        response.nullable_string()  # cluster_id
        response.int32()  # controller_id
        partitions: list[_PartitionMeta] = []
        for _ in range(response.array_length()):
            error, name = response.int16(), response.string()
            response.int8()  # is_internal
            found = [_read_partition_meta(response) for _ in range(response.array_length())]
            if name != topic:
                continue
            _raise_for(error, f"Metadata for topic {topic!r}")
            partitions = sorted(found, key=lambda meta: meta.partition)
        if not partitions:
            raise KafkaLogError(f"Metadata from {self._where()} names no partitions of {topic!r}")
        return brokers, partitions

    def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        max_bytes: int,
        wait_ms: int = FETCH_MAX_WAIT_MS,
    ) -> _FetchedPartition:
        body = (
            _INT32.pack(-1)  # replica_id: a consumer
            + _INT32.pack(wait_ms)
            + _INT32.pack(0)  # min_bytes: answer with whatever there is
            + _INT32.pack(max_bytes)
            + _INT8.pack(READ_UNCOMMITTED)  # control batches and all, up to the high watermark
            + _INT32.pack(1)
            + _string(topic)
            + _INT32.pack(1)
            + _INT32.pack(partition)
            + _INT64.pack(offset)
            + _INT32.pack(max_bytes)
        )
        response = self.request(API_FETCH, FETCH_VERSION, body)
        response.int32()  # throttle_time_ms
        for _ in range(response.array_length()):
            name = response.string()
            for _ in range(response.array_length()):
                index, error, high_watermark = response.int32(), response.int16(), response.int64()
                response.int64()  # last_stable_offset
                for _ in range(response.array_length()):  # aborted_transactions (Tansu: none)
                    response.int64()
                    response.int64()
                records = response.nullable_bytes() or b""
                if name == topic and index == partition:
                    _raise_for(error, f"Fetch {topic}/{partition} from offset {offset}")
                    return _FetchedPartition(high_watermark, records)
        raise _Retriable(f"the Fetch response from {self._where()} lacks {topic}/{partition}")


def _read_partition_meta(response: _Buffer) -> _PartitionMeta:
    error, index, leader = response.int16(), response.int32(), response.int32()
    for _ in range(2):  # replica_nodes, isr_nodes
        for _ in range(response.array_length()):
            response.int32()
    if error in RETRIABLE_ERRORS:
        raise _Retriable(f"partition {index}: {error_name(error)}")
    return _PartitionMeta(index, leader)


def _raise_for(error: int, what: str) -> None:
    if error == 0:
        return
    message = f"{what} failed: {error_name(error)}"
    raise _Retriable(message) if error in RETRIABLE_ERRORS else KafkaLogError(message)


class _Session:
    """Connections by broker address, opened on first use, all closed at the end."""

    def __init__(self, bootstrap: str, deadline: float) -> None:
        self.bootstrap = [_host_port(address) for address in bootstrap.split(",") if address]
        if not self.bootstrap:
            raise ValueError(f"no broker address in bootstrap {bootstrap!r}")
        self.deadline = deadline
        self.connections: dict[tuple[str, int], _Connection] = {}

    def connection(self, address: tuple[str, int]) -> _Connection:
        if address not in self.connections:
            connection = _Connection(address, self.deadline)
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
            except (_Retriable, KeyError) as exc:  # KeyError: a leader not among the brokers
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
            except _Retriable as exc:
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
        committed=sorted(committed, key=_by_position),
        aborted=sorted(aborted, key=_by_position),
        open=sorted(still_open, key=_by_position),
    )
