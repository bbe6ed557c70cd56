"""The test-only read_committed reader: its parser on hand-built bytes, and the real broker's log.

The broker tests produce with librdkafka and check that ``read_committed_log`` sorts each
record by the fate of its transaction exactly as Apache Kafka's read_committed does, which
Tansu's own Fetch cannot (it never reports aborted transactions).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import select
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer

import kafka_log
from conftest import TopicFactory, unique_name
from fleetserve.config import KafkaSettings
from fleetserve.kafka.clients import producer
from kafka_log import (
    ABORT,
    COMMIT,
    CommittedLog,
    KafkaLogError,
    Record,
    apply_markers,
    crc32c,
    fetch_batches,
    parse_record_batches,
    read_committed_log,
)

ProducerMaker = Callable[..., Producer]


# -- Hand-built RecordBatch v2 bytes, written independently of the parser --------------------


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
    buffer = kafka_log._Buffer(bytes.fromhex(encoded))
    assert buffer.varint() == value
    assert buffer.remaining == 0
    assert zigzag_varint(value).hex() == encoded


def test_varlong_reads_64_bit_values() -> None:
    for value in (2**40, -(2**40), 2**63 - 1, -(2**63)):
        assert kafka_log._Buffer(zigzag_varint(value)).varlong() == value


def test_an_overlong_varint_is_an_error() -> None:
    with pytest.raises(KafkaLogError, match="varint longer than 5 bytes"):
        kafka_log._Buffer(bytes.fromhex("ffffffffff01")).varint()


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


def fates(log: CommittedLog) -> tuple[list[tuple[int, bytes | None]], ...]:
    """(offset, value) pairs of committed, aborted and open records."""
    return tuple(
        [(record.offset, record.value) for record in records]
        for records in (log.committed, log.aborted, log.open)
    )


# -- Against the real broker ---------------------------------------------------------------------


@pytest.fixture
def make_producer(
    kafka_settings: KafkaSettings,
    topic_factory: TopicFactory,  # noqa: ARG001 - requested only to be torn down after this
) -> Iterator[ProducerMaker]:
    """Producers that are closed (open transactions aborted) before the test's topics go.

    Depending on ``topic_factory`` makes pytest tear this fixture down first: librdkafka
    2.16 can crash when a topic is deleted under a live client.
    """
    made: list[tuple[Producer, bool]] = []

    def make(transactional_id: str | None = None, **overrides: Any) -> Producer:
        config: dict[str, Any] = {"linger.ms": 1, **overrides}
        if transactional_id:
            config["transactional.id"] = transactional_id
        client = producer(kafka_settings, config)
        made.append((client, bool(transactional_id)))
        if transactional_id:
            client.init_transactions(10)
        return client

    yield make
    for client, transactional in made:
        if transactional:
            with contextlib.suppress(KafkaException):  # no transaction open
                client.abort_transaction(5)
        client.flush(5)
        client.close()


def send(client: Producer, topic: str, *values: bytes, partition: int = 0) -> None:
    for value in values:
        client.produce(topic, value=value, partition=partition)
    assert client.flush(10) == 0, "records left undelivered"


@pytest.mark.kafka
def test_aborted_and_committed_transactions_interleaved(
    kafka_bootstrap: str, topic_factory: TopicFactory, make_producer: ProducerMaker
) -> None:
    topic = topic_factory(partitions=1)
    first = make_producer(unique_name("txn-a"))
    second = make_producer(unique_name("txn-b"))
    plain = make_producer()

    first.begin_transaction()
    send(first, topic, b"a0", b"a1")
    second.begin_transaction()
    send(second, topic, b"u0")
    send(plain, topic, b"p0")
    send(first, topic, b"a2")
    first.abort_transaction(10)
    send(second, topic, b"u1")
    second.commit_transaction(10)
    first.begin_transaction()
    send(first, topic, b"c0")
    first.commit_transaction(10)
    send(plain, topic, b"p1")

    log = read_committed_log(kafka_bootstrap, topic)
    # Offsets 5, 7 and 9 hold the markers: ABORT of the first, COMMIT of the second, of the first.
    assert fates(log) == (
        [(2, b"u0"), (3, b"p0"), (6, b"u1"), (8, b"c0"), (10, b"p1")],
        [(0, b"a0"), (1, b"a1"), (4, b"a2")],
        [],
    )
    assert [r.transactional for r in log.committed] == [True, False, True, True, False]
    assert len({r.producer_id for r in log.committed if r.transactional}) == 2
    assert all(r.topic == topic and r.partition == 0 for r in log.committed + log.aborted)

    markers = [
        (batch.base_offset, batch.control_types())
        for batch in fetch_batches(kafka_bootstrap, topic)[0]
        if batch.control
    ]
    assert markers == [(5, [ABORT]), (7, [COMMIT]), (9, [COMMIT])]


CHILD_PRODUCER = """
import json, sys
from confluent_kafka import Producer
config, topic, count = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
client = Producer(config)
client.init_transactions(10)
client.begin_transaction()
for i in range(count):
    client.produce(topic, value=b"doomed-%d" % i, partition=i % 2)
assert client.flush(10) == 0
print("flushed", flush=True)
sys.stdin.read()  # wait for the SIGKILL
"""


def start_doomed_producer(
    kafka_settings: KafkaSettings, topic: str, transactional_id: str, count: int
) -> subprocess.Popen[str]:
    config = {**kafka_settings.client_config(), "transactional.id": transactional_id}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_PRODUCER, json.dumps(config), topic, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.kill()
        _, errors = process.communicate(timeout=10)
        pytest.fail(f"the child producer said nothing in {timeout_s}s; stderr:\n{errors}")
    return line.strip()


@pytest.mark.kafka
def test_sigkilled_transaction_is_aborted_when_its_id_comes_back(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    topic_factory: TopicFactory,
    make_producer: ProducerMaker,
) -> None:
    topic = topic_factory(partitions=2)
    transactional_id = unique_name("txn-killed")
    child = start_doomed_producer(kafka_settings, topic, transactional_id, count=6)
    try:
        assert wait_for_line(child, timeout_s=20) == "flushed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL

    before = read_committed_log(kafka_bootstrap, topic)
    assert fates(before)[:2] == ([], [])
    assert sorted(r.value or b"" for r in before.open) == [b"doomed-%d" % i for i in range(6)]

    successor = make_producer(transactional_id)  # init_transactions fences and aborts
    successor.begin_transaction()
    send(successor, topic, b"after-0", b"after-1", partition=0)
    send(successor, topic, b"after-2", partition=1)
    successor.commit_transaction(10)

    log = read_committed_log(kafka_bootstrap, topic)
    assert [(r.partition, r.value) for r in log.aborted] == [
        (0, b"doomed-0"),
        (0, b"doomed-2"),
        (0, b"doomed-4"),
        (1, b"doomed-1"),
        (1, b"doomed-3"),
        (1, b"doomed-5"),
    ]
    assert [(r.partition, r.value) for r in log.committed] == [
        (0, b"after-0"),
        (0, b"after-1"),
        (1, b"after-2"),
    ]
    assert log.open == []
    # Same producer id before and after the fencing (only the epoch moves on).
    assert {r.producer_id for r in log.aborted} == {r.producer_id for r in log.committed}


@pytest.mark.kafka
def test_open_transaction_records_are_reported_as_open(
    kafka_bootstrap: str, topic_factory: TopicFactory, make_producer: ProducerMaker
) -> None:
    topic = topic_factory(partitions=1)
    hanging = make_producer(unique_name("txn-open"))
    other = make_producer(unique_name("txn-other"))
    plain = make_producer()

    hanging.begin_transaction()
    send(hanging, topic, b"o0", b"o1")
    send(plain, topic, b"p0")
    other.begin_transaction()
    send(other, topic, b"u0")
    other.commit_transaction(10)

    log = read_committed_log(kafka_bootstrap, topic)
    # Committed past the open transaction: a live read_committed consumer would wait for it.
    assert fates(log) == ([(2, b"p0"), (3, b"u0")], [], [(0, b"o0"), (1, b"o1")])

    hanging.abort_transaction(10)
    assert fates(read_committed_log(kafka_bootstrap, topic)) == (
        [(2, b"p0"), (3, b"u0")],
        [(0, b"o0"), (1, b"o1")],
        [],
    )


BINARY = bytes(range(256))


@pytest.mark.kafka
def test_partitions_headers_and_nulls_round_trip(
    kafka_bootstrap: str,
    topic_factory: TopicFactory,
    make_producer: ProducerMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_log, "FIRST_MAX_BYTES", 64)  # many fetches per partition
    topic = topic_factory(partitions=3)
    plain = make_producer(**{"compression.type": "gzip"})
    txn = make_producer(unique_name("txn-parts"))
    headers: list[tuple[str, bytes | None]] = [
        ("trace", BINARY),
        ("null", None),
        ("empty", b""),
        ("trace", b"repeated key"),
        ("ключ", "значение".encode()),
    ]
    sent: list[tuple[int, bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]] = [
        (0, None, None, ()),
        (0, b"", b"", tuple(headers)),
        (1, BINARY, BINARY[::-1], (("h", None),)),
        (1, b"zz", b"z" * 1000, ()),  # compressible, so the batch really is gzipped
        (2, b"key", None, ()),
        (2, None, b"value", tuple(headers[:2])),
    ]
    for partition, key, value, record_headers in sent:
        plain.produce(
            topic, key=key, value=value, partition=partition, headers=list(record_headers)
        )
    assert plain.flush(10) == 0
    txn.begin_transaction()
    for partition in range(3):
        txn.produce(topic, key=b"txn", value=b"t%d" % partition, partition=partition)
    txn.commit_transaction(10)

    log = read_committed_log(kafka_bootstrap, topic, timeout_s=10)
    assert log.aborted == log.open == []
    plain_records = [r for r in log.committed if not r.transactional]
    assert [(r.partition, r.key, r.value, r.headers) for r in plain_records] == sent
    assert [(r.partition, r.offset, r.value) for r in log.committed if r.transactional] == [
        (0, 2, b"t0"),
        (1, 2, b"t1"),
        (2, 2, b"t2"),
    ]
    assert [(r.partition, r.offset) for r in log.committed] == sorted(
        (r.partition, r.offset) for r in log.committed
    )
    assert all(r.timestamp_ms > 1_600_000_000_000 for r in log.committed)

    only_two = read_committed_log(kafka_bootstrap, topic, partitions=[2])
    assert [(r.partition, r.value) for r in only_two.committed] == [
        (2, None),
        (2, b"value"),
        (2, b"t2"),
    ]
    gzip_batches = [
        batch for batch in fetch_batches(kafka_bootstrap, topic)[1] if not batch.control
    ]
    assert gzip_batches[0].compression == "gzip"


@pytest.mark.kafka
def test_empty_topic_and_missing_topic_or_partition(
    kafka_bootstrap: str, topic_factory: TopicFactory
) -> None:
    topic = topic_factory(partitions=2)
    assert read_committed_log(kafka_bootstrap, topic) == CommittedLog([], [], [])
    with pytest.raises(KafkaLogError, match=r"has no partition \[5\]"):
        read_committed_log(kafka_bootstrap, topic, partitions=[0, 5])
    with pytest.raises(KafkaLogError, match="UNKNOWN_TOPIC_OR_PARTITION"):
        read_committed_log(kafka_bootstrap, unique_name("no-such-topic"), timeout_s=5)


def test_a_partition_of_thousands_of_batches_is_read_whole(
    topic_factory: TopicFactory, kafka_settings: KafkaSettings
) -> None:
    """Tansu answers a 1 ms fetch at the start of a long partition with nothing; the reader
    waits longer instead of giving up (it once failed past about 3,500 batches)."""
    topic = topic_factory(partitions=1)
    client = producer(kafka_settings, {"linger.ms": 0, "batch.num.messages": 1})
    for i in range(8000):
        client.produce(topic, value=b"%d" % i)
        if i % 100 == 0:
            client.poll(0)
    assert client.flush(30) == 0
    log = read_committed_log(kafka_settings.bootstrap_servers, topic, timeout_s=60)
    assert [record.value for record in log.committed] == [b"%d" % i for i in range(8000)]
