"""No single record can stop a worker: each case ends in one dead letter and the partition
moves on. Real broker, real models, one in-process worker that must never die.

Every record is sent to the same partition as the good queries behind it, and every
outcome is matched by its source offset, so a record the worker skipped, doubled or
stopped on shows up as a missing or extra outcome.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import orjson
import pytest
from confluent_kafka import KafkaError, Message, Producer
from onnx import numpy_helper

from fleetserve.client.query import make_query
from fleetserve.contracts.codec import decode, validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.route import Route
from fleetserve.deadletters.build import MAX_HEADER_NAME_CHARS, MAX_VALUE_BYTES
from support.bots import BotFactory, BuiltBots
from support.kafka import TopicFactory
from support.kafka_log import read_committed_log
from support.serving import Harness, wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=2, seed=31)


class Sender:
    """Produces to one partition and remembers each record's offset."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.offsets: list[int] = []

    def send(self, key: bytes, value: bytes, **extra: Any) -> int:
        delivered: list[Message] = []

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            assert error is None, error
            delivered.append(message)

        self.producer.produce(
            self.topic, key=key, value=value, partition=0, on_delivery=on_delivery, **extra
        )
        assert self.producer.flush(10) == 0
        offset = delivered[0].offset()
        assert offset is not None
        self.offsets.append(offset)
        return offset


def outcomes_by_offset(harness: Harness, topics: list[str], count: int) -> dict[int, list[Any]]:
    """Committed replies and dead letters by the offset of the query they answer."""
    found: dict[int, list[Any]] = {}

    def arrived() -> bool:
        found.clear()
        for topic in topics:
            for record in read_committed_log(harness.bootstrap, topic).committed:
                value = orjson.loads(record.value or b"{}")
                found.setdefault(value["source"]["offset"], []).append(value)
        return sum(len(v) for v in found.values()) >= count

    wait_until(arrived, 60, f"fewer than {count} outcomes arrived")
    return found


def test_records_that_broke_their_own_dead_letter_end_in_one_each_and_the_partition_moves_on(
    harness: Harness, producer_factory: Any, topic_factory: TopicFactory
) -> None:
    """The cases that stopped a partition for good, each followed by a good query."""
    bot = harness.built.bot_ids[0]
    harness.deployer.deploy(harness.built.route(bot))
    replies = harness.topics.name("replies")
    inbox = topic_factory(f"{replies}.inbox", partitions=1)
    table = topic_factory(f"{replies}.table", partitions=1, config={"cleanup.policy": "compact"})
    # Another namespace's deployments topic, compacted and keyed by bot id.
    foreign = topic_factory(f"team-b.{harness.topics.base_name('deployments')}", partitions=1)
    running = harness.start_worker()
    big_records = {"linger.ms": 0, "message.max.bytes": 8 * MAX_VALUE_BYTES}
    sender = Sender(producer_factory(**big_records), harness.topics.name("queries"))
    key = bot.encode()

    def good(text: str, **fields: Any) -> int:
        return sender.send(key, orjson.dumps(make_query(bot, text, **fields)))

    def query_bytes(**fields: Any) -> bytes:
        return orjson.dumps(make_query(bot, "what is my balance", **fields))

    long_name = "h" * (MAX_HEADER_NAME_CHARS + 100)
    expected: dict[int, str] = {
        sender.send(key, b"{not json", headers=[(long_name, b"x"), ("kept", b"y")]): "decode",
        good("after a long header name"): "reply",
        sender.send(key, b"[1]", timestamp=-5): "decode",
        good("after a negative timestamp"): "reply",
        sender.send(key, b"x" * (3 * MAX_VALUE_BYTES)): "too_large",
        good("after 3 MB"): "reply",
        sender.send(key, query_bytes()[:-1] + b',"version":1}'): "schema",
        good("after a duplicate key"): "reply",
        sender.send(key, query_bytes(reply_to={"topic": foreign})): "schema",
        sender.send(key, query_bytes(reply_to={"topic": table})): "schema",
        sender.send(key, query_bytes(reply_to={"topic": "anywhere-else"})): "schema",
        good("into the caller's inbox", reply_to={"topic": inbox}): "reply",
        good("the last one"): "reply",
    }
    topics = [replies, inbox, harness.topics.name("dead_letters")]
    found = outcomes_by_offset(harness, topics, len(expected))

    assert running.thread.is_alive(), "the worker died"
    assert running.worker.health().ready
    kinds = {
        offset: [("reply" if "top_k" in v else v["reason"]) for v in values]
        for offset, values in found.items()
    }
    assert kinds == {offset: [kind] for offset, kind in expected.items()}
    letters = {o: v[0] for o, v in found.items() if "reason" in v[0]}
    for letter in letters.values():
        validate(MessageKind.DEAD_LETTER, letter)
    header_case, negative, large, duplicate, *refused = sorted(letters)
    assert letters[header_case]["original"]["headers"] == [{"name": "kept", "value_b64": "eQ=="}]
    assert "headers: 1 of 2 left out" in letters[header_case]["original"]["omitted"]
    assert letters[negative]["original"]["timestamp_ms"] is None
    big = letters[large]["original"]
    assert big["value_b64"] is None
    assert big["key_b64"] is not None
    assert f"value: {3 * MAX_VALUE_BYTES} bytes" in big["omitted"]
    assert "the key appears twice" in letters[duplicate]["message"]
    messages = [letters[o]["message"] for o in refused]
    assert "control topic" in messages[0]
    assert "compacted" in messages[1]
    assert "not an allowed reply topic" in messages[2]
    assert not read_committed_log(harness.bootstrap, foreign).committed  # nothing written there
    assert not read_committed_log(harness.bootstrap, table).committed


def test_a_dead_letter_that_fails_its_contract_falls_back_to_a_minimal_one(
    harness: Harness, producer_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug nobody has found in the dead-letter builder still cannot stop the partition."""
    from fleetserve.serving import outcomes  # noqa: PLC0415 - the module whose bug we plant

    def broken(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
        return {"version": 1, "reason": "not-a-reason"}

    monkeypatch.setattr(outcomes, "build_dead_letter", broken)
    bot = harness.built.bot_ids[1]
    harness.deployer.deploy(harness.built.route(bot))
    running = harness.start_worker()
    sender = Sender(producer_factory(**{"linger.ms": 0}), harness.topics.name("queries"))
    bad = sender.send(bot.encode(), b"{not json", headers=[("trace", b"abc")])
    after = sender.send(bot.encode(), orjson.dumps(make_query(bot, "hello there")))
    topics = [harness.topics.name("replies"), harness.topics.name("dead_letters")]
    found = outcomes_by_offset(harness, topics, 2)
    assert running.thread.is_alive()
    (letter,) = found[bad]
    letter = decode(MessageKind.DEAD_LETTER, orjson.dumps(letter))  # within its contract
    assert letter["reason"] == "decode"
    assert letter["original"]["value_b64"] is None
    assert "the full dead letter could not be encoded" in letter["original"]["omitted"]
    assert (letter["source"]["partition"], letter["source"]["offset"]) == (0, bad)
    assert "top_k" in found[after][0]


def test_a_deployed_snapshot_over_the_size_cap_is_refused_and_its_queries_dead_lettered(
    harness: Harness,
) -> None:
    """A forged 20 MB snapshot, consistent manifest and deployment, is never loaded."""
    bot = harness.built.bot_ids[0]
    real = harness.built.store.read_model(bot, harness.built.versions[bot])
    model = onnx.load_from_string(real)
    padding = np.ones((5, 1 << 20), dtype=np.float32)  # 20 MiB of real tensor data
    model.graph.initializer.append(numpy_helper.from_array(padding, "padding"))
    forged = model.SerializeToString()
    ref = harness.built.store.put_snapshot(bot, forged, {"model": {"quantization": "fp32"}})
    harness.deployer.deploy(Route(bot, "real", ref.version, ref.sha256))
    running = harness.start_worker(max_model_bytes=16 << 20)
    asked = {harness.send(bot, f"hello {i}") for i in range(3)}
    outcomes = harness.outcomes(asked)
    assert running.thread.is_alive()
    for rid in asked:
        ((kind, letter),) = outcomes[rid]
        assert (kind, letter["reason"]) == ("dead_letter", "model_load_failed")
        assert f"is {len(forged)} bytes, over the worker's cap of {16 << 20}" in letter["message"]
    assert running.worker.cache.stats().resident_models == 0


def test_a_dead_letter_that_left_its_original_out_is_replayed_from_the_source(
    harness: Harness, producer_factory: Any
) -> None:
    bot = harness.built.bot_ids[1]
    harness.deployer.deploy(harness.built.route(bot))
    harness.start_worker()
    long_name = "h" * (MAX_HEADER_NAME_CHARS + 1)
    sender = Sender(producer_factory(**{"linger.ms": 0}), harness.topics.name("queries"))
    offset = sender.send(bot.encode(), b"{not json", headers=[(long_name, b"x")])
    dead_letters = harness.topics.name("dead_letters")
    (letter,) = outcomes_by_offset(harness, [dead_letters], 1)[offset]
    assert letter["original"]["headers"] == []
    replayed = harness.cli("dlq", "replay", "--reason", "decode")
    assert replayed.exit_code == 0, replayed.output
    assert "original fetched from" in replayed.output
    queries = read_committed_log(harness.bootstrap, harness.topics.name("queries")).committed
    again = [r for r in queries if r.offset != offset]
    assert len(again) == 1
    assert again[0].value == b"{not json"
    assert dict(again[0].headers)[long_name] == b"x"  # the header the dead letter left out
