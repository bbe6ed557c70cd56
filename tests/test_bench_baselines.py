"""The benchmark's baselines as the benchmark runs them: child processes, stopped by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from fleetserve.client.query import make_query
from support.bots import BotFactory, BuiltBots
from support.kafka import ConsumerFactory, ProducerFactory, TopicFactory
from support.serving import clean_env

pytestmark = pytest.mark.kafka

QUERIES = 200
BOTS = 3
ARRIVAL_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=BOTS, seed=11)


def queries_for(built: BuiltBots) -> list[dict[str, Any]]:
    """QUERIES queries spread over the bots, each the text of one of the bot's utterances."""
    bots = built.bot_ids
    queries = []
    for i in range(QUERIES):
        bot = bots[i % len(bots)]
        utterances = built.bots[bot].utterances
        queries.append(make_query(bot, utterances[i % len(utterances)].text))
    return queries


def send_all(producer_factory: ProducerFactory, topic: str, queries: list[dict[str, Any]]) -> None:
    producer = producer_factory()
    for query in queries:
        producer.produce(topic, key=query["bot_id"].encode(), value=orjson.dumps(query))
    assert producer.flush(10) == 0


def read(consumer: Consumer, count: int) -> list[tuple[bytes | None, dict[str, Any]]]:
    """(key, decoded value) of the first ``count`` records, or fail after the timeout."""
    records: list[tuple[bytes | None, dict[str, Any]]] = []
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    while len(records) < count and time.monotonic() < deadline:
        for message in consumer.consume(500, 0.2):
            if message.error() is None:
                records.append((message.key(), orjson.loads(message.value() or b"null")))
    assert len(records) == count, f"{len(records)} of {count} records arrived"
    assert not consumer.consume(100, 1.0), "more records than queries"
    return records


@contextmanager
def baseline(module: str, log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """The baseline as a child process; the block's end sends SIGTERM and expects exit 0."""
    argv = [sys.executable, "-m", f"fleetserve_bench.baselines.{module}", *args]
    with log.open("wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=clean_env())
    try:
        yield process
        assert process.poll() is None, f"{module} exited early:\n{log.read_text()[-3000:]}"
        process.send_signal(signal.SIGTERM)
        code = process.wait(STOP_TIMEOUT_S)
        assert code == 0, f"{module} exited {code} on SIGTERM:\n{log.read_text()[-3000:]}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_relay_copies_every_message_and_commits_on_sigterm(
    topic_factory: TopicFactory,
    producer_factory: ProducerFactory,
    consumer_factory: ConsumerFactory,
    kafka_bootstrap: str,
    built: BuiltBots,
    tmp_path: Path,
) -> None:
    source, target = topic_factory(partitions=3), topic_factory(partitions=3)
    group = f"{source}-relay"
    queries = queries_for(built)
    send_all(producer_factory, source, queries)
    out = consumer_factory(target)
    args = ("--bootstrap", kafka_bootstrap, "--in", source, "--out", target, "--group", group)
    with baseline("relay", tmp_path / "relay.log", *args, "--batch", "64"):
        records = read(out, QUERIES)
    # Bytes in, bytes out: each query once, under its own key.
    assert sorted((key, value["request_id"]) for key, value in records) == sorted(
        (q["bot_id"].encode(), q["request_id"]) for q in queries
    )
    # Every consumed offset was committed by the time it exited. The topic is new, so the
    # committed offsets add up to the records read (Tansu's high watermarks were seen to
    # count produce batches, not records, so they cannot be the reference).
    probe = consumer_factory(group=group)
    committed = probe.committed([TopicPartition(source, p) for p in range(3)], 10)
    assert sum(max(tp.offset, 0) for tp in committed) == QUERIES


def test_faust_agent_answers_every_query_with_a_real_intent(
    topic_factory: TopicFactory,
    producer_factory: ProducerFactory,
    consumer_factory: ConsumerFactory,
    kafka_bootstrap: str,
    built: BuiltBots,
    tmp_path: Path,
) -> None:
    queries_topic, replies_topic = topic_factory(partitions=3), topic_factory(partitions=3)
    queries = queries_for(built)
    replies = consumer_factory(replies_topic)
    args = (
        *("--bootstrap", kafka_bootstrap, "--queries", queries_topic),
        *("--replies", replies_topic, "--store", str(built.store_dir)),
        *("--group", f"{queries_topic}-faust"),
    )
    with baseline("faust_agent", tmp_path / "faust.log", *args):
        send_all(producer_factory, queries_topic, queries)
        records = read(replies, QUERIES)
    sent = {q["request_id"]: q for q in queries}
    assert {value["request_id"] for _, value in records} == sent.keys()
    for key, reply in records:
        query = sent[reply["request_id"]]
        bot = query["bot_id"]
        intents = {u.intent for u in built.bots[bot].utterances} | {"fallback"}
        assert key == bot.encode()
        assert reply["bot_id"] == bot
        assert reply["intent"] in intents
        assert 0.0 <= reply["confidence"] <= 1.0
        assert reply["sent_at_ms"] == query["sent_at_ms"]
        assert reply["produced_at_ms"] >= reply["sent_at_ms"]
    # The bots answer their own training texts: nearly all by name, not by fallback.
    answered = [reply["intent"] for _, reply in records if reply["intent"] != "fallback"]
    assert len(answered) >= 0.8 * QUERIES
