"""The committed-log reader's parsing and marker rules, on hand-built record batches (pure)."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable

import pytest

from support import record_batches
from support.committed_log import ABORT, COMMIT, CommittedLog, apply_markers, fates
from support.record_batches import KafkaLogError, Record, crc32c, parse_record_batches


def zigzag_varint(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def varint_bytes(value: bytes | None) -> bytes:
    return zigzag_varint(-1) if value is None else zigzag_varint(len(value)) + value


def encode_record(
    offset_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: tuple[tuple[str, bytes | None], ...] = (),
    timestamp_delta: int = 0,
) -> bytes:
    body = b"\x00" + zigzag_varint(timestamp_delta) + zigzag_varint(offset_delta)
    body += varint_bytes(key) + varint_bytes(value) + zigzag_varint(len(headers))
    for name, header_value in headers:
        body += varint_bytes(name.encode()) + varint_bytes(header_value)
    return zigzag_varint(len(body)) + body


def encode_batch(
    base_offset: int,
    records: list[bytes],
    *,
    attributes: int = 0,
    producer_id: int = -1,
    epoch: int = 0,
    base_timestamp: int = 1_700_000_000_000,
    gzipped: bool = False,
) -> bytes:
    """A RecordBatch v2 of already encoded ``records``."""
    payload = b"".join(records)
    if gzipped:
        payload = gzip.compress(payload)
        attributes |= 0x01
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            attributes,
            len(records) - 1,
            base_timestamp,
            base_timestamp + 5,
            producer_id,
            epoch if producer_id >= 0 else -1,
            0 if producer_id >= 0 else -1,
            len(records),
        )
        + payload
    )
    after_length = struct.pack(">ibI", 7, 2, crc32c(after_crc)) + after_crc
    return struct.pack(">qi", base_offset, len(after_length)) + after_length


def control_batch(offset: int, producer_id: int, marker: int, epoch: int = 0) -> bytes:
    record = encode_record(0, struct.pack(">hh", 0, marker), struct.pack(">hi", 0, 0))
    return encode_batch(offset, [record], attributes=0x30, producer_id=producer_id, epoch=epoch)


def data_batch(offset: int, producer_id: int, *values: bytes, epoch: int = 0) -> bytes:
    records = [encode_record(i, None, value) for i, value in enumerate(values)]
    attributes = 0x10 if producer_id >= 0 else 0
    return encode_batch(
        offset, records, attributes=attributes, producer_id=producer_id, epoch=epoch
    )


# A batch exactly as Tansu 0.6.0 returned it: one non-transactional record, value b"plain".
TANSU_BATCH = bytes.fromhex(
    "0000000000000000 0000003d 00000000 02 0b32f4b5"  # base offset, length, epoch, magic, CRC
    " 0000 00000000 000001a1fceffd8e 000001a1fceffd8e"  # attributes, last delta, timestamps
    " ffffffffffffffff ffff ffffffff 00000001"  # producer id, epoch, base sequence; 1 record
    " 16 00 00 00 01 0a 706c61696e 00"  # length 11, attributes, deltas, null key, value, 0 headers
)


def test_crc32c_matches_the_castagnoli_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


@pytest.mark.parametrize(
    ("encoded", "value"),
    [
        ("00", 0),
        ("01", -1),
        ("02", 1),
        ("03", -2),
        ("7f", -64),
        ("8001", 64),
        ("feffffff0f", 2**31 - 1),
        ("ffffffff0f", -(2**31)),
    ],
)
def test_zigzag_varints(encoded: str, value: int) -> None:
    buffer = record_batches.Buffer(bytes.fromhex(encoded))
    assert buffer.varint() == value
    assert buffer.remaining == 0
    assert zigzag_varint(value).hex() == encoded


def test_varlong_reads_64_bit_values() -> None:
    for value in (2**40, -(2**40), 2**63 - 1, -(2**63)):
        assert record_batches.Buffer(zigzag_varint(value)).varlong() == value


def test_an_overlong_varint_is_an_error() -> None:
    with pytest.raises(KafkaLogError, match="varint longer than 5 bytes"):
        record_batches.Buffer(bytes.fromhex("ffffffffff01")).varint()


def test_parses_a_batch_as_tansu_wrote_it() -> None:
    [batch] = parse_record_batches(TANSU_BATCH)
    assert (batch.base_offset, batch.last_offset, batch.producer_id) == (0, 0, -1)
    assert not batch.transactional
    assert not batch.control
    assert batch.compression == "none"
    assert batch.records == (Record(0, 1_795_244_948_878, None, b"plain", ()),)


def test_parses_keys_values_headers_and_timestamps() -> None:
    headers = (("trace", b"\x00\xff"), ("empty", b""), ("null", None), ("trace", b"again"))
    records = [
        encode_record(0, b"k", b"v", headers),
        encode_record(1, None, None, timestamp_delta=3),
        encode_record(2, b"", b"", (("ключ", "значение".encode()),), timestamp_delta=-2),
    ]
    [batch] = parse_record_batches(encode_batch(40, records, base_timestamp=1000))
    assert batch.records == (
        Record(40, 1000, b"k", b"v", headers),
        Record(41, 1003, None, None, ()),
        Record(42, 998, b"", b"", (("ключ", "значение".encode()),)),
    )


def test_log_append_time_batches_stamp_every_record_with_max_timestamp() -> None:
    record = encode_record(0, None, b"x", timestamp_delta=1)
    [batch] = parse_record_batches(encode_batch(0, [record], attributes=0x08, base_timestamp=10))
    assert batch.records[0].timestamp_ms == 15


def test_a_partial_batch_at_the_end_is_left_for_the_next_fetch() -> None:
    data = data_batch(0, -1, b"a", b"b") + data_batch(2, -1, b"c")
    whole = parse_record_batches(data)
    assert [batch.last_offset for batch in whole] == [1, 2]
    partial_tail = data + data_batch(3, -1, b"d")[:-3]
    assert parse_record_batches(partial_tail) == whole
    for cut in (1, 11, 12, 30):  # inside the log header, at its end, inside the batch header
        assert parse_record_batches(data + data_batch(3, -1, b"d")[:cut]) == whole
    assert parse_record_batches(b"") == []


def test_gzip_batches_are_decompressed() -> None:
    records = [encode_record(i, None, b"z" * 50) for i in range(3)]
    [parsed] = parse_record_batches(encode_batch(0, records, gzipped=True))
    assert parsed.compression == "gzip"
    assert [record.value for record in parsed.records] == [b"z" * 50] * 3


def with_crc(raw: bytes) -> bytes:
    """``raw`` with its CRC recomputed, so that a later check is what fails."""
    return raw[:17] + struct.pack(">I", crc32c(raw[21:])) + raw[21:]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "CRC-32C"),
        (lambda raw: raw[:16] + b"\x01" + raw[17:], "magic 1"),
        (lambda raw: with_crc(raw[:22] + b"\x03" + raw[23:]), "compressed with lz4"),
        (lambda raw: with_crc(raw + b"\x00"), "1 bytes after 1 records"),
    ],
    ids=["crc", "magic", "lz4", "trailing-bytes"],
)
def test_bad_batches_are_clear_errors(mangle: Callable[[bytes], bytes], message: str) -> None:
    raw = mangle(data_batch(0, -1, b"payload"))
    if message.startswith("1 bytes"):  # keep batchLength in step with the extra byte
        raw = raw[:8] + struct.pack(">i", len(raw) - 12) + raw[12:]
    with pytest.raises(KafkaLogError, match=message):
        parse_record_batches(raw)


def test_apply_markers_follows_each_producers_next_marker() -> None:
    log = b"".join(
        [
            data_batch(0, 7, b"a0", b"a1"),  # producer 7: aborted below
            data_batch(2, 8, b"u0"),  # producer 8: committed below
            data_batch(3, -1, b"plain"),
            data_batch(4, 7, b"a2"),
            control_batch(5, 7, ABORT),
            data_batch(6, 8, b"u1"),
            control_batch(7, 8, COMMIT),
            data_batch(8, 7, b"c0"),
            control_batch(9, 7, COMMIT),
            data_batch(10, 9, b"o0"),  # producer 9: never ends
            data_batch(11, -1, b"late"),
        ]
    )
    result = apply_markers("t", 4, parse_record_batches(log))
    assert fates(result) == (
        [(2, b"u0"), (3, b"plain"), (6, b"u1"), (8, b"c0"), (11, b"late")],
        [(0, b"a0"), (1, b"a1"), (4, b"a2")],
        [(10, b"o0")],
    )
    assert {record.partition for record in result.committed} == {4}
    assert [record.transactional for record in result.committed] == [True, False, True, True, False]
    assert [record.producer_id for record in result.committed] == [8, -1, 8, 7, -1]


def test_an_aborted_record_whose_marker_went_astray_is_not_committed_by_the_next_epoch() -> None:
    """The duplicate reply seen after a crash loop: epoch 0's reply had no ABORT in its
    partition, and matching by producer id alone let epoch 1's COMMIT commit it too."""
    log = b"".join(
        [
            data_batch(0, 7, b"reply-by-the-dead-incarnation", epoch=0),
            data_batch(1, 7, b"reply-by-its-successor", epoch=1),
            control_batch(2, 7, COMMIT, epoch=1),
        ]
    )
    assert fates(apply_markers("t", 0, parse_record_batches(log))) == (
        [(1, b"reply-by-its-successor")],
        [(0, b"reply-by-the-dead-incarnation")],
        [],
    )


def test_a_late_marker_of_a_fenced_epoch_leaves_its_successors_records_alone() -> None:
    log = b"".join(
        [
            data_batch(0, 7, b"old", epoch=0),
            control_batch(1, 7, ABORT, epoch=1),  # a coordinator fences with the bumped epoch
            data_batch(2, 7, b"new", epoch=2),
            control_batch(3, 7, ABORT, epoch=1),  # stray: an older epoch's marker, late
            control_batch(4, 7, COMMIT, epoch=2),
        ]
    )
    assert fates(apply_markers("t", 0, parse_record_batches(log))) == (
        [(2, b"new")],
        [(0, b"old")],
        [],
    )


def test_a_marker_with_nothing_pending_and_an_unknown_marker() -> None:
    assert apply_markers("t", 0, parse_record_batches(control_batch(0, 3, ABORT))) == (
        CommittedLog([], [], [])
    )
    with pytest.raises(KafkaLogError, match="unknown control record type 5"):
        apply_markers("t", 0, parse_record_batches(control_batch(0, 3, 5)))
