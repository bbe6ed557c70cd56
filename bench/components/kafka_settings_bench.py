"""Reply compression and the client's batch and fetch settings, on reply-shaped records.

Run: python bench/components/kafka_settings_bench.py [--records 100000]
         [--out bench/results/kafka_settings.json]

A worker writes each pass's replies (about 500, ~600 bytes of JSON each) and reads the next
pass's queries. This measures, against a fresh embedded broker on this machine, what the
producer's ``compression.type`` (none, lz4, zstd) and ``linger.ms`` and the consumer's
``fetch.min.bytes`` / ``fetch.wait.max.ms`` cost: CPU-us per record of this process
(librdkafka's threads included) and of the broker, and the bytes the broker had to take.

It also measures what ``fetch.wait.max.ms`` costs a consumer with nothing to read, which is
every worker between queries: the broker's CPU while one consumer sits on an empty
12-partition topic, and the one-hop latency of single records sent at random moments to
that consumer. Tansu answers an empty fetch only after (part of) the wait, so the wait
trades the broker's idle CPU for latency there; Apache Kafka answers as soon as data
arrives, so there a long wait costs neither.

And it measures how the development broker slows as one partition fills
(``partition_growth``): single-record batches (what a paced producer at linger 5 ms and a
worker's small passes write) are appended to one partition in steps, and after each step
the one-hop latency of single records is measured, beside a fresh partition of another
topic as the control, with the broker's CPU per appended batch. The steps stop once the
p50 passes ``GROWTH_STOP_MS``: in one try, Tansu dropped every connection near 8,000.
The records are real replies of the bench's shape, with distinct request ids and texts, so
compression sees what it would see in production. Process CPU time is used, so other jobs
on the machine do not inflate the figures (they may still stretch wall times).
"""

from __future__ import annotations

import argparse
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from fleetserve.broker.embedded import EmbeddedBroker
from fleetserve_bench.machine import write_result
from fleetserve_bench.procstat import cpu_seconds
from fleetserve_bench.stats import percentiles

PASS = 500


def reply_bytes(index: int) -> bytes:
    """A reply as a worker writes it (the shape of ``serving/replies.py``)."""
    return orjson.dumps(
        {
            "version": 1,
            "request_id": uuid.uuid4().hex,
            "bot_id": f"clinc-banking-{index % 1000:05d}-a1b2",
            "stage": "real",
            "model": {
                "version": "20261130T120000Z-ab12cd34",
                "sha256": "ab" * 32,
                "quantization": "int8",
            },
            "intent": f"intent_{index % 37}",
            "confidence": 0.8123 + (index % 100) / 1000,
            "top_k": [
                {"intent": f"intent_{(index + k) % 37}", "score": 0.8 / (k + 1)} for k in range(3)
            ],
            "fallback": False,
            "text": None,
            "timings": {"queued_ms": index % 7, "inference_ms": 0.41, "total_ms": index % 9},
            "worker": {"id": "worker-1", "group": "fleetserve-real", "host": "bench"},
            "source": {
                "topic": "fleetserve.queries",
                "partition": index % 12,
                "offset": index,
                "attempt": 1,
            },
            "produced_at_ms": 1_800_000_000_000 + index,
        }
    )


def produce_run(
    bootstrap: str, broker_pid: int, topic: str, config: dict[str, Any], values: list[bytes]
) -> dict[str, Any]:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **config})
    cpu_before, broker_before = time.process_time(), cpu_seconds([broker_pid])
    started = time.perf_counter()
    for start in range(0, len(values), PASS):
        for index in range(start, min(start + PASS, len(values))):
            producer.produce(topic, key=str(index % 1000).encode(), value=values[index])
        producer.flush(30)  # a pass ends when all its outputs are acknowledged
    wall = time.perf_counter() - started
    own = time.process_time() - cpu_before
    broker = cpu_seconds([broker_pid]) - broker_before
    return {
        "config": config,
        "records_per_s": round(len(values) / wall),
        "cpu_us_per_record_client": round(own / len(values) * 1e6, 2),
        "cpu_us_per_record_broker": round(broker / len(values) * 1e6, 2),
    }


def consume_run(
    bootstrap: str, broker_pid: int, topic: str, config: dict[str, Any], expected: int
) -> dict[str, Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "enable.auto.commit": False,
            **config,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    cpu_before, broker_before = time.process_time(), cpu_seconds([broker_pid])
    started = time.perf_counter()
    seen = 0
    while seen < expected and time.perf_counter() - started < 120:
        seen += len(consumer.consume(PASS, 0.1))
    wall = time.perf_counter() - started
    own = time.process_time() - cpu_before
    broker = cpu_seconds([broker_pid]) - broker_before
    consumer.close()
    return {
        "config": config,
        "records": seen,
        "records_per_s": round(seen / wall),
        "cpu_us_per_record_client": round(own / max(seen, 1) * 1e6, 2),
        "cpu_us_per_record_broker": round(broker / max(seen, 1) * 1e6, 2),
    }


IDLE_WAITS_MS = (1, 5, 20, 100, 500)
IDLE_SECONDS = 5.0
SPARSE_RECORDS = 40


@dataclass
class Tail:
    """What a tailing consumer reads: its partitions, and when each value first arrived."""

    partitions: list[int]
    arrived: dict[bytes, float] = field(default_factory=dict)


@contextmanager
def tailing(bootstrap: str, topic: str, wait_ms: int) -> Iterator[Tail]:
    """A consumer at the end of every partition of ``topic``, polled on its own thread."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": wait_ms,
        }
    )
    partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, -1) for p in partitions])  # the end: nothing yet
    tail = Tail(partitions)
    stop = threading.Event()

    def poll() -> None:  # librdkafka's fetch loop runs whatever this thread does
        while not stop.is_set():
            message = consumer.poll(0.1)
            if message is not None and message.error() is None and message.value():
                tail.arrived[message.value() or b""] = time.perf_counter()

    reader = threading.Thread(target=poll, daemon=True)
    reader.start()
    time.sleep(1.0)  # assignment and the first fetches settle
    try:
        yield tail
    finally:
        stop.set()
        reader.join()
        consumer.close()


def probe_ms(
    bootstrap: str,
    topic: str,
    tail: Tail,
    *,
    count: int,
    label: str,
    gap_s: tuple[float, float],
    seed: int,
    timeout_s: float,
) -> list[float]:
    """One-hop latency of ``count`` single records sent at random moments (``gap_s``
    apart, a random phase against the fetch cycle), spread over the tail's partitions."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    rng = random.Random(seed)  # noqa: S311 - send times, not secrets
    sent: dict[bytes, float] = {}
    for n in range(count):
        time.sleep(rng.uniform(*gap_s))
        value = f"{label}-{n}".encode()
        sent[value] = time.perf_counter()
        producer.produce(topic, value=value, partition=tail.partitions[n % len(tail.partitions)])
        producer.flush(10)
    deadline = time.perf_counter() + timeout_s
    while len(tail.arrived.keys() & sent.keys()) < len(sent) and time.perf_counter() < deadline:
        time.sleep(0.05)
    return [1000 * (tail.arrived[v] - sent[v]) for v in sent if v in tail.arrived]


def idle_run(bootstrap: str, broker_pid: int, topic: str, wait_ms: int) -> dict[str, Any]:
    """Broker CPU with one consumer idle on ``topic``, then the latency of sparse records."""
    with tailing(bootstrap, topic, wait_ms) as tail:
        broker_before, started = cpu_seconds([broker_pid]), time.perf_counter()
        time.sleep(IDLE_SECONDS)
        idle_cores = (cpu_seconds([broker_pid]) - broker_before) / (time.perf_counter() - started)
        latencies = probe_ms(
            bootstrap, topic, tail, count=SPARSE_RECORDS, label="sparse", gap_s=(0.05, 0.25),
            seed=wait_ms, timeout_s=10,
        )  # fmt: skip
    return {
        "fetch.wait.max.ms": wait_ms,
        "broker_cores_idle": round(idle_cores, 3),
        "records": SPARSE_RECORDS,
        "arrived": len(latencies),
        "one_hop_ms": percentiles(latencies),
    }


GROWTH_STEPS = (0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000)
GROWTH_STOP_MS = 200.0
GROWTH_PROBES = 30


def one_hop_ms(bootstrap: str, topic: str, probes: int, seed: int) -> list[float]:
    """One-hop latency of ``probes`` single records to ``topic`` (one partition)."""
    with tailing(bootstrap, topic, 5) as tail:
        return probe_ms(
            bootstrap, topic, tail, count=probes, label=f"probe-{seed}", gap_s=(0.03, 0.1),
            seed=seed, timeout_s=5,
        )  # fmt: skip


def append_batches(bootstrap: str, topic: str, count: int) -> None:
    """``count`` single-record batches on partition 0 (linger 0, one record per batch)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    for n in range(count):
        producer.produce(topic, value=b"x" * 100, partition=0)
        if n % 50 == 49:  # a few requests in flight, as a paced producer has
            producer.flush(30)
    producer.flush(30)


def partition_growth(admin: AdminClient, bootstrap: str, broker_pid: int) -> dict[str, Any]:
    """One-hop latency on a partition as it fills with batches, and on a fresh one beside it."""
    for topic in ("growth-filled", "growth-fresh"):
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(10)
    steps: list[dict[str, Any]] = []
    held = 0
    for target in GROWTH_STEPS:
        before = cpu_seconds([broker_pid])
        append_batches(bootstrap, "growth-filled", target - held)
        cpu_us = (cpu_seconds([broker_pid]) - before) / (target - held) * 1e6 if target else None
        held = target
        filled = one_hop_ms(bootstrap, "growth-filled", GROWTH_PROBES, target)
        fresh = one_hop_ms(bootstrap, "growth-fresh", GROWTH_PROBES, target + 1)
        steps.append({
            "batches_held": target,
            "broker_cpu_us_per_appended_batch": None if cpu_us is None else round(cpu_us, 1),
            "arrived": len(filled),
            "one_hop_ms": percentiles(filled),
            "fresh_partition_one_hop_ms": percentiles(fresh),
        })  # fmt: skip
        print(steps[-1])
        if len(filled) < GROWTH_PROBES or steps[-1]["one_hop_ms"]["p50"] > GROWTH_STOP_MS:
            break
    return {
        "probes_per_step": GROWTH_PROBES,
        "batch": "one 100-byte record per batch",
        "stop_when_p50_over_ms": GROWTH_STOP_MS,
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/kafka_settings.json"))
    args = parser.parse_args()
    values = [reply_bytes(i) for i in range(args.records)]
    producers: list[dict[str, Any]] = [
        {"compression.type": "none", "linger.ms": 2},
        {"compression.type": "lz4", "linger.ms": 2},
        {"compression.type": "zstd", "linger.ms": 2},
        {"compression.type": "none", "linger.ms": 5},
        {"compression.type": "none", "linger.ms": 20},
    ]
    consumers: list[dict[str, Any]] = [
        {"fetch.wait.max.ms": 5},
        {"fetch.wait.max.ms": 5, "fetch.min.bytes": 65536},
        {"fetch.wait.max.ms": 50, "fetch.min.bytes": 65536},
    ]
    with EmbeddedBroker() as broker:
        pid = broker.pid
        assert pid is not None
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        produced = []
        for n, config in enumerate(producers):
            topic = f"settings-{n}"
            admin.create_topics([NewTopic(topic, 12, 1)])[topic].result(10)
            produced.append(produce_run(broker.bootstrap_servers, pid, topic, config, values))
            print(produced[-1])
        consumed = []
        for config in consumers:  # all read the uncompressed topic written first
            consumed.append(
                consume_run(broker.bootstrap_servers, pid, "settings-0", config, args.records)
            )
            print(consumed[-1])
        admin.create_topics([NewTopic("settings-idle", 12, 1)])["settings-idle"].result(10)
        idle = []
        for wait_ms in IDLE_WAITS_MS:
            idle.append(idle_run(broker.bootstrap_servers, pid, "settings-idle", wait_ms))
            print(idle[-1])
        growth = partition_growth(admin, broker.bootstrap_servers, pid)
    fields = {
        "records": args.records,
        "reply_bytes_mean": round(sum(map(len, values)) / len(values)),
        "pass_size": PASS,
        "produce": produced,
        "consume": consumed,
        "idle_fetch": idle,
        "partition_growth": growth,
    }
    write_result(args.out, "kafka_settings", fields)


if __name__ == "__main__":
    main()
