"""The Python client and `fleetserve ask`: queries out, each request's own answer back.

The worker is not part of these tests: a small responder thread stands in for it, reading
queries and writing schema-valid replies and dead letters in Kafka transactions, as the
worker does. Bot ``ghost`` is dead-lettered, bot ``silent`` never answered, and every
answer is preceded by a reply to someone else's request that the client must ignore.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from confluent_kafka import OFFSET_BEGINNING, Message, Producer, TopicPartition

from fleetserve.cli.main import cli
from fleetserve.client.client import CLIENT_CONTRACTS, FleetClient, Outcome
from fleetserve.client.query import make_query
from fleetserve.config.settings import KafkaSettings
from fleetserve.contracts.codec import encode
from fleetserve.contracts.schemas import MessageKind, validator
from fleetserve.core.clock import now_ms
from fleetserve.core.outcome import Failure
from fleetserve.errors import ContractError, ReplyTimeout, RetriableError
from fleetserve.kafka.clients import consumer, producer
from fleetserve.kafka.records import inbound_record
from support.builders import dead_letter_value, reply_value

NOW_MS = 1_800_000_000_000
SHA = "c" * 64


# -- make_query: pure -------------------------------------------------------------------------


def test_make_query_fills_the_required_fields_and_omits_unset_ones() -> None:
    query = make_query("bank", "block my card", now_ms=NOW_MS)
    assert query == {
        "version": 1,
        "request_id": query["request_id"],
        "bot_id": "bank",
        "text": "block my card",
        "sent_at_ms": NOW_MS,
    }
    assert len(query["request_id"]) == 32
    int(query["request_id"], 16)  # a uuid4 in hex
    assert make_query("bank", "hi")["request_id"] != query["request_id"]


def test_make_query_passes_optional_fields_through() -> None:
    query = make_query(
        "bank", "hi", request_id="r-1", stage="beta", ttl_ms=500, top_k=3, now_ms=NOW_MS
    )
    assert query["request_id"] == "r-1"
    assert (query["stage"], query["ttl_ms"], query["top_k"]) == ("beta", 500, 3)
    deadline = make_query("bank", "hi", deadline_ms=NOW_MS + 1000, now_ms=NOW_MS)
    assert deadline["deadline_ms"] == NOW_MS + 1000
    assert "ttl_ms" not in deadline


def test_make_query_uses_the_wall_clock_by_default() -> None:
    before = time.time_ns() // 1_000_000
    sent = make_query("bank", "hi")["sent_at_ms"]
    assert before <= sent <= time.time_ns() // 1_000_000


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"bot_id": "Bank!"}, "bot_id"),
        ({"text": ""}, "text"),
        ({"stage": "prod"}, "stage"),
        ({"ttl_ms": 0}, "ttl_ms"),
        ({"top_k": 21}, "top_k"),
        ({"ttl_ms": 10, "deadline_ms": NOW_MS + 10}, "deadline_ms"),
        ({"now_ms": 1_800_000_000}, "sent_at_ms"),  # seconds by mistake
    ],
)
def test_make_query_rejects_what_the_contract_rejects(fields: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {"bot_id": "bank", "text": "hi", **fields}
    with pytest.raises(ContractError, match=field) as caught:
        make_query(arguments.pop("bot_id"), arguments.pop("text"), **arguments)
    assert caught.value.reason == "schema_violation"


# -- the client without a broker ----------------------------------------------------------------


def test_constructor_does_no_io_and_sending_needs_start() -> None:
    client = FleetClient(
        KafkaSettings("127.0.0.1:1"),
        queries_topic="q",
        replies_topic="r",
        dead_letters_topic="d",
    )
    with pytest.raises(RuntimeError, match="start"):
        client.send("bank", "hi")
    client.close()  # closing an unstarted client is harmless


def test_start_connects_the_producer_before_any_query_is_stamped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """sent_at_ms is stamped by send(); start() must leave nothing lazy for the first send
    (the broker connection and the topic's metadata), or that query carries the client's
    start-up as queue time. Stand-in clients record the order of calls."""
    calls: list[str] = []

    class StandInProducer:
        def list_topics(self, topic: str, **_kwargs: float) -> None:
            calls.append(f"producer metadata {topic}")

        def produce(self, topic: str, **_kwargs: Any) -> None:
            calls.append(f"produce {topic}")

        def poll(self, _timeout: float) -> int:
            return 0

        def flush(self, _timeout: float) -> int:
            return 0

    class StandInConsumer:
        def assign(self, _partitions: list[TopicPartition]) -> None:
            calls.append("consumer assigned")

        def poll(self, _timeout: float) -> None:
            time.sleep(0.01)

        def close(self) -> None:
            pass

    module = "fleetserve.client.client"
    monkeypatch.setattr(f"{module}.producer", lambda *_args: StandInProducer())
    monkeypatch.setattr(f"{module}.consumer", lambda *_args: StandInConsumer())
    monkeypatch.setattr(
        f"{module}.log_ends", lambda _kafka, topics, _t: {t: {0: (0, 0)} for t in topics}
    )
    client = FleetClient(
        KafkaSettings("localhost:1"),
        queries_topic="q",
        replies_topic="r",
        dead_letters_topic="d",
    ).start()
    assert calls == ["consumer assigned", "producer metadata q"]
    assert client.start_up_ms is not None
    assert client.start_up_ms >= 0
    client.send("bot", "hello")
    assert calls[-1] == "produce q"
    client.close(timeout_s=0.1)


def test_outcome_accessors_follow_the_kind() -> None:
    reply = Outcome("r-1", "reply", {"intent": "greet"}, 1.5)
    dead = Outcome("r-2", "dead_letter", {"reason": "whatever_new_code"}, 2.0)
    assert reply.reply is reply.record
    assert reply.dead_letter is None
    assert dead.dead_letter is dead.record
    assert dead.reply is None
    assert issubclass(ReplyTimeout, RetriableError)


# -- against the real broker, with a stand-in worker ------------------------------------------


def reply_record(query: dict[str, Any], source: Message, *, intent: str) -> dict[str, Any]:
    return reply_value(
        query["bot_id"],
        request_id=query["request_id"],
        intent=intent,
        stage=query.get("stage", "real"),
        text=query["text"],
        source=(source.topic() or "", source.partition() or 0, source.offset() or 0),
        produced_at_ms=now_ms(),
    )


def dead_letter_record(query: dict[str, Any], source: Message) -> dict[str, Any]:
    failure = Failure(
        "no_deployment",
        "route",
        f"{query['bot_id']} has nothing deployed to real",
        bot_id=query["bot_id"],
        request_id=query["request_id"],
        stage="real",
    )
    return dead_letter_value(inbound_record(source), failure)


@dataclass(frozen=True)
class Topics:
    prefix: str
    queries: str
    replies: str
    dead_letters: str


class Responder:
    """Answers each polled batch in reverse order, inside one transaction per batch."""

    def __init__(self, kafka: KafkaSettings, topics: Topics) -> None:
        self.topics = topics
        self.reader = consumer(kafka, {"group.id": f"responder-{uuid.uuid4().hex[:8]}"})
        self.writer = producer(
            kafka, {"transactional.id": f"responder-{uuid.uuid4().hex}", "linger.ms": 1}
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        metadata = self.reader.list_topics(self.topics.queries, timeout=10)
        partitions = metadata.topics[self.topics.queries].partitions
        self.reader.assign(
            [TopicPartition(self.topics.queries, p, OFFSET_BEGINNING) for p in partitions]
        )
        self.writer.init_transactions(10)
        while not self.stop.is_set():
            batch = [m for m in self.reader.consume(100, 0.05) if m.error() is None]
            if batch:
                self.writer.begin_transaction()
                for message in reversed(batch):
                    self.answer(message)
                self.writer.commit_transaction(10)

    def answer(self, message: Message) -> None:
        query = orjson.loads(message.value() or b"")
        key = message.key()
        if query["bot_id"] == "silent":
            return
        if query["bot_id"] == "ghost":
            value = encode(MessageKind.DEAD_LETTER, dead_letter_record(query, message))
            self.writer.produce(self.topics.dead_letters, key=key, value=value)
            return
        foreign = {**query, "request_id": uuid.uuid4().hex}
        for each, intent in ((foreign, "not-yours"), (query, f"echo:{query['text']}")):
            value = encode(MessageKind.REPLY, reply_record(each, message, intent=intent))
            self.writer.produce(self.topics.replies, key=key, value=value)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.reader.close()


@pytest.fixture
def topics(topic_factory: Callable[..., str]) -> Topics:
    """The declared queries, replies and dead-letters topics under a fresh prefix."""
    prefix = f"client-{uuid.uuid4().hex[:8]}."
    return Topics(
        prefix,
        *(
            topic_factory(name=f"{prefix}{name}", partitions=3)
            for name in ("fleetserve.queries", "fleetserve.replies", "fleetserve.dead-letters")
        ),
    )


@pytest.fixture
def responder(kafka_settings: KafkaSettings, topics: Topics) -> Iterator[Responder]:
    worker = Responder(kafka_settings, topics)
    worker.thread.start()
    yield worker
    worker.close()


def new_client(kafka: KafkaSettings, topics: Topics) -> FleetClient:
    """A client of ``topics``, not started."""
    return FleetClient(
        kafka,
        queries_topic=topics.queries,
        replies_topic=topics.replies,
        dead_letters_topic=topics.dead_letters,
    )


@pytest.fixture
def client(kafka_settings: KafkaSettings, topics: Topics) -> Iterator[FleetClient]:
    with new_client(kafka_settings, topics) as started:
        yield started


@pytest.mark.kafka
@pytest.mark.usefixtures("responder")
def test_concurrent_asks_each_get_their_own_reply(client: FleetClient) -> None:
    questions = [(f"bot-{i % 3}", f"question {i}") for i in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(lambda q: client.ask(q[0], q[1], 15, top_k=2), questions))
    for (bot_id, text), outcome in zip(questions, outcomes, strict=True):
        assert outcome.kind == "reply"
        reply = outcome.reply
        assert reply is not None
        assert reply["request_id"] == outcome.request_id
        assert (reply["bot_id"], reply["intent"]) == (bot_id, f"echo:{text}")
        assert outcome.latency_ms > 0
    assert len({outcome.request_id for outcome in outcomes}) == len(questions)


@pytest.mark.kafka
@pytest.mark.usefixtures("responder")
def test_dead_letter_and_timeout_outcomes(client: FleetClient) -> None:
    dead = client.ask("ghost", "anyone there?", timeout_s=15)
    assert dead.kind == "dead_letter"
    assert dead.reply is None
    assert dead.dead_letter is not None
    assert dead.dead_letter["reason"] == "no_deployment"
    assert dead.dead_letter["request_id"] == dead.request_id

    started = time.monotonic()
    with pytest.raises(ReplyTimeout) as caught:
        client.ask("silent", "hello?", timeout_s=0.5)
    assert 0.5 <= time.monotonic() - started < 3
    assert caught.value.request_id in str(caught.value)

    results = client.ask_many([("bot-1", "a"), ("silent", "b"), ("ghost", "c")], timeout_s=1.5)
    answered, timed_out, dead_lettered = results
    assert isinstance(answered, Outcome)
    assert answered.kind == "reply"
    assert isinstance(timed_out, ReplyTimeout)
    assert isinstance(dead_lettered, Outcome)
    assert dead_lettered.kind == "dead_letter"


@pytest.mark.kafka
def test_client_listens_from_the_end_at_start(
    kafka_settings: KafkaSettings, topics: Topics, producer_factory: Callable[..., Producer]
) -> None:
    """An old answer with the same request id is not taken; one written after send() is."""
    raw = producer_factory()
    query = make_query("silent", "hi", request_id="reused-id")
    stand_in = Message(topics.queries, 0, 0, key=b"silent", value=orjson.dumps(query))
    stale = encode(MessageKind.REPLY, reply_record(query, stand_in, intent="stale"))
    raw.produce(topics.replies, key=b"silent", value=stale)
    assert raw.flush(10) == 0
    with new_client(kafka_settings, topics) as client:
        request_id = client.send("silent", "hi", request_id="reused-id")
        with pytest.raises(ReplyTimeout):
            client.wait(request_id, 1.0)
        client.send("silent", "hi", request_id="reused-id")
        with pytest.raises(ValueError, match="already in flight"):
            client.send("silent", "hi again", request_id="reused-id")
        fresh = encode(MessageKind.REPLY, reply_record(query, stand_in, intent="fresh"))
        raw.produce(topics.replies, key=b"silent", value=fresh)
        assert raw.flush(10) == 0
        outcome = client.wait("reused-id", 10)
    assert outcome.reply is not None
    assert outcome.reply["intent"] == "fresh"


def ask_cli(kafka_bootstrap: str, topics: Topics, *args: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["--bootstrap", kafka_bootstrap, "--topic-prefix", topics.prefix, "ask", *args],
        catch_exceptions=False,
    )


@pytest.mark.kafka
@pytest.mark.usefixtures("responder")
def test_ask_command_prints_reply_dead_letter_and_timeout(
    kafka_bootstrap: str, topics: Topics
) -> None:
    as_json = ask_cli(kafka_bootstrap, topics, "bot-1", "where is my parcel", "--json")
    assert as_json.exit_code == 0, as_json.output
    document = orjson.loads(as_json.stdout)
    assert document["kind"] == "reply"
    assert document["record"]["intent"] == "echo:where is my parcel"
    assert document["record"]["request_id"] == document["request_id"]
    assert document["client_start_up_ms"] > 0  # reported apart from the round trip

    text = ask_cli(kafka_bootstrap, topics, "bot-2", "hello", "--stage", "beta", "--top-k", "2")
    assert text.exit_code == 0, text.output
    lines = dict(line.split(None, 1) for line in text.stdout.splitlines())
    assert lines["intent"] == "echo:hello"
    assert lines["confidence"] == "0.900"
    assert lines["fallback"] == "no"
    assert lines["model"] == "v1 (int8)"
    assert lines["stage"] == "beta"
    assert lines["server"].startswith("queued 1.0 ms")
    assert lines["client"].startswith("round trip ")

    dead = ask_cli(kafka_bootstrap, topics, "ghost", "hi")
    assert dead.exit_code == 1
    assert "no_deployment" in dead.stdout
    assert "has nothing deployed" in dead.stdout

    silent = ask_cli(kafka_bootstrap, topics, "silent", "hi", "--timeout", "0.5")
    assert silent.exit_code == 3
    assert "no reply or dead letter" in silent.stderr


def connections_to(port: int) -> int:
    """This process's established TCP connections to ``port`` on the loopback."""
    own = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                own.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01" and fields[9] in own:
                    count += 1  # state 01: ESTABLISHED
    return count


@pytest.mark.kafka
def test_close_releases_the_clients_broker_connections(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    """A closed client that is still referenced (a caller's variable, a frame) must not
    keep its producer connected: the demo's embedded broker, stopped after the client was
    closed, waited for that connection and was killed."""
    port = int(kafka_settings.bootstrap_servers.rsplit(":", 1)[1])
    before = connections_to(port)
    client = new_client(kafka_settings, topics).start()
    assert connections_to(port) > before
    client.close()
    deadline = time.monotonic() + 5
    while connections_to(port) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert connections_to(port) <= before
    with pytest.raises(RuntimeError, match="was closed"):
        client.send("bank", "hi")


@pytest.mark.kafka
@pytest.mark.usefixtures("responder")
def test_no_contract_compiles_after_start(kafka_settings: KafkaSettings, topics: Topics) -> None:
    """The contracts' validators compile on first use, 13.5 ms for a query's: compiled on the
    first send, that time was stamped into the first query's queue time (a one-shot `ask`
    printed 33-56 ms round trips against 13-22 after). start() compiles what the client uses."""
    validator.cache_clear()
    with new_client(kafka_settings, topics) as started:
        compiled = validator.cache_info().misses
        assert compiled >= len(CLIENT_CONTRACTS)
        assert started.ask("bank", "hello", 15).kind == "reply"
        assert started.ask("ghost", "hello", 15).kind == "dead_letter"
        assert validator.cache_info().misses == compiled
