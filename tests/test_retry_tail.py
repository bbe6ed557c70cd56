"""Reading to a partition's end while a transaction on it is open (a crashed pass's).

A SIGKILLed pass leaves its retry record in a transaction that stays open until the worker
restarts and fences it. Tansu answers a read_committed ListOffsets with 0 meanwhile; a tail
read that trusted it saw no steps, the query was answered by its re-run, and the fenced
record was answered too (tests/test_crash_loops.py caught it once in a suite run).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fleetserve.kafka.clients import ends_reader
from fleetserve.kafka.offsets import log_ends
from fleetserve.kafka.scan import read_to_end
from fleetserve.retry.dedupe import Step, step_of, visible_steps
from fleetserve.retry.state import RetryState, retried_origin, retry_headers
from support.kafka import ConsumerFactory, ProducerFactory, TopicFactory, unique_name

QUERIES = "fleetserve.queries"


def retry_record(producer: Any, topic: str, query_offset: int) -> None:
    now_ms = int(time.time() * 1000)
    state = RetryState(
        attempts=1,
        not_before_ms=0,
        first_failed_ms=now_ms,
        reason="model_load_failed",
        message="store unreadable",
        topic=QUERIES,
        partition=0,
        offset=query_offset,
        timestamp_ms=now_ms,
    )
    producer.produce(topic, key=b"bot", value=b"{}", headers=retry_headers(state), partition=1)


def steps_the_group_reads(kafka_settings: Any, topic: str) -> set[Step]:
    origins = (retried_origin(record) for record in read_to_end(kafka_settings, [topic]))
    return {step_of(origin) for origin in origins if origin is not None}


def test_a_crashed_pass_still_open_when_the_tail_is_read_is_waited_for(
    topic_factory: TopicFactory,
    producer_factory: ProducerFactory,
    consumer_factory: ConsumerFactory,
    kafka_settings: Any,
) -> None:
    retry = topic_factory(partitions=3)
    live = producer_factory(**{"transactional.id": unique_name("live"), "linger.ms": 0})
    live.init_transactions(10)
    live.begin_transaction()
    retry_record(live, retry, query_offset=1)
    live.commit_transaction(10)
    crashed_id = unique_name("crashed")
    crashed = producer_factory(**{"transactional.id": crashed_id, "linger.ms": 0})
    crashed.init_transactions(10)
    crashed.begin_transaction()
    retry_record(crashed, retry, query_offset=2)
    assert crashed.flush(10) == 0  # written, never committed: the pass was killed
    assert log_ends(kafka_settings, [retry], 10)[retry][1][1] >= 2

    def restart_the_crashed_worker() -> None:
        producer_factory(**{"transactional.id": crashed_id}).init_transactions(10)

    reader = consumer_factory(**{"isolation.level": "read_committed", "enable.partition.eof": True})
    end_reader = ends_reader(kafka_settings)
    fence = threading.Timer(1.0, restart_the_crashed_worker)
    fence.start()
    try:
        seen = visible_steps(reader, end_reader, retry)
    finally:
        fence.join()
        end_reader.close()  # before the topic goes (support/kafka.py: librdkafka's metadata)

    expected = steps_the_group_reads(kafka_settings, retry)
    assert (QUERIES, 0, 1, 2) in expected
    assert seen == expected  # Tansu also hands over the fenced record; Apache Kafka hides it


def test_a_partitions_end_lies_past_records_of_an_open_transaction(
    topic_factory: TopicFactory, producer_factory: ProducerFactory, kafka_settings: Any
) -> None:
    """Where `fleetserve ask` starts listening: not at 0 because a worker's pass is open."""
    topic = topic_factory(partitions=3)
    writer = producer_factory(**{"transactional.id": unique_name("open"), "linger.ms": 0})
    writer.init_transactions(10)
    offsets: list[int | None] = []
    for commit in (True, False):
        writer.begin_transaction()
        writer.produce(
            topic, value=b"{}", partition=1, on_delivery=lambda _e, m: offsets.append(m.offset())
        )
        assert writer.flush(10) == 0
        if commit:
            writer.commit_transaction(10)
    open_offset = offsets[-1]
    assert open_offset is not None
    _low, high = log_ends(kafka_settings, [topic], 10)[topic][1]
    assert high > open_offset
    writer.abort_transaction(10)
