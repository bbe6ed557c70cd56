"""The test-only read_committed reader against the real broker (its parser: test_kafka_log_parsing).

The broker tests produce with librdkafka and check that ``read_committed_log`` sorts each
record by the fate of its transaction exactly as Apache Kafka's read_committed does, which
Tansu's own Fetch cannot (it never reports aborted transactions).
"""

from __future__ import annotations

import contextlib
import json
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer

from fleetserve.config.settings import KafkaSettings
from fleetserve.kafka.clients import producer
from support import kafka_log
from support.committed_log import ABORT, COMMIT, CommittedLog, fates
from support.kafka import TopicFactory, unique_name
from support.kafka_log import fetch_batches, read_committed_log
from support.record_batches import KafkaLogError

ProducerMaker = Callable[..., Producer]


# -- Hand-built RecordBatch v2 bytes, written independently of the parser --------------------


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
