"""RecordBatch v2 bytes to records: the parsing half of the committed-log reader. Test-only."""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass

BATCH_HEADER_BYTES = 61  # baseOffset .. record count
LOG_OVERHEAD = 12  # baseOffset int64 + batchLength int32
MAGIC_OFFSET = 16  # of the magic byte from the start of a batch
CRC_COVERS_FROM = 21  # attributes .. end of batch
COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08  # 1 = LogAppendTime: every record's timestamp is maxTimestamp
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20
COMPRESSION_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


class KafkaLogError(RuntimeError):
    """The broker answered with an error code, or sent bytes this reader cannot parse."""


class Truncated(KafkaLogError):
    """Fewer bytes than a field needs."""


class Retriable(KafkaLogError):
    """An error code that may clear up if asked again."""


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

INT8 = struct.Struct(">b")
INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")
UINT32 = struct.Struct(">I")
INT64 = struct.Struct(">q")


class Buffer:
    """A cursor over bytes; every read past the end raises :class:`Truncated`."""

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
            raise Truncated(f"need {size} bytes at {self.pos}, have {self.remaining}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def _unpack(self, fmt: struct.Struct) -> int:
        value: int = fmt.unpack(self.take(fmt.size))[0]
        return value

    def int8(self) -> int:
        return self._unpack(INT8)

    def int16(self) -> int:
        return self._unpack(INT16)

    def int32(self) -> int:
        return self._unpack(INT32)

    def uint32(self) -> int:
        return self._unpack(UINT32)

    def int64(self) -> int:
        return self._unpack(INT64)

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
            types.append(Buffer(record.key, 2).int16())
        return types


def parse_record_batches(data: bytes) -> list[RecordBatch]:
    """The complete batches in ``data`` (a Fetch response's records), in order.

    A partial batch at the end (brokers cut responses at ``max_bytes``) is ignored:
    fetch again from the offset after the last complete batch.
    """
    batches = []
    pos = 0
    while len(data) - pos >= LOG_OVERHEAD:
        batch_length = INT32.unpack_from(data, pos + 8)[0]
        end = pos + LOG_OVERHEAD + batch_length
        if end > len(data):
            break
        batches.append(_parse_batch(data[pos:end]))
        pos = end
    return batches


def _parse_batch(data: bytes) -> RecordBatch:
    buf = Buffer(data)
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
    records_buf = Buffer(_decompress(attributes, buf.take(buf.remaining), base_offset))
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


def _parse_record(buf: Buffer, base_offset: int, base_timestamp: int) -> Record:
    length = buf.varint()
    body = Buffer(buf.take(length))
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
