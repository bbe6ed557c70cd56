"""`fleetserve dlq replay` against the real broker: what goes out, byte for byte; what is held
back, refused or skipped; idempotence across runs; pacing; fencing of concurrent replays.

What landed is counted in the committed log (tests/kafka_log.py applies the transaction
markers itself, as a read_committed reader on Apache Kafka would).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from click.testing import Result
from confluent_kafka.admin import AdminClient, NewTopic

from fleetserve.config.settings import KafkaSettings
from fleetserve.contracts.codec import validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.clock import now_ms
from fleetserve.core.records import InboundRecord
from fleetserve.deadletters.headers import REPLAY_ATTEMPT, REPLAY_OF
from fleetserve.deadletters.operators.records import DeadLetterRecord
from fleetserve.deadletters.operators.replay_plan import (
    ReplayEvent,
    ReplayOptions,
    Verdict,
    build_replay,
)
from fleetserve.deadletters.operators.sink import ReplayTopics, TransactionalSink, transactional_id
from fleetserve.errors import FatalError
from fleetserve.kafka.clients import producer
from fleetserve.topics.spec import TopicSet
from support.committed_log import LogRecord
from support.dead_letters import dead_letter, query_record, run_cli, write_dead_letters
from support.kafka_log import read_committed_log

pytestmark = pytest.mark.kafka

Letters = dict[str, dict[str, Any] | bytes]


class Replays:
    """One test's declared topics, and the CLI and committed logs over them."""

    def __init__(self, bootstrap: str, prefix: str, topics: TopicSet, kafka: KafkaSettings):
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.topics = topics
        self.kafka = kafka

    def write(self, letters: Letters) -> dict[str, str]:
        client = producer(self.kafka, {"linger.ms": 5})
        try:
            return write_dead_letters(client, self.topics.name("dead_letters"), letters).ids
        finally:
            client.close()

    def replay(self, *args: str) -> Result:
        result = run_cli(self.bootstrap, self.prefix, "dlq", "replay", *args)
        assert result.exit_code == 0, result.output
        return result

    def committed(self, topic: str) -> list[LogRecord]:
        return read_committed_log(self.bootstrap, topic).committed

    def sent(self) -> list[LogRecord]:
        return self.committed(self.topics.name("queries"))

    def ledger(self) -> dict[str, dict[str, Any]]:
        return {
            (r.key or b"").decode(): orjson.loads(r.value or b"")
            for r in self.committed(self.topics.name("replays"))
        }

    @property
    def queries(self) -> str:
        return self.topics.name("queries")


@pytest.fixture
def replays(
    kafka_bootstrap: str, topic_prefix: str, declared: TopicSet, kafka_settings: KafkaSettings
) -> Replays:
    return Replays(kafka_bootstrap, topic_prefix, declared, kafka_settings)


def summary(result: Result) -> str:
    return result.output.strip().splitlines()[-1]


def unknown_bot(replays: Replays, bot: str, offset: int, **kwargs: Any) -> dict[str, Any]:
    group = kwargs.pop("group", "real")
    record = query_record(
        bot, topic=replays.queries, partition=offset % 12, offset=offset, **kwargs
    )
    return dead_letter(record, "unknown_bot", group=group)


def test_replay_sends_the_exact_original_once_even_when_run_twice(replays: Replays) -> None:
    headers = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)
    record = query_record(
        "alpha",
        topic=replays.queries,
        partition=4,
        offset=42,
        headers=(*headers, (REPLAY_OF, b"old/0/1")),
        replay_attempt=1,  # it failed again after one replay
        ttl_ms=1000,
    )
    real = dead_letter(record, "model_missing", version="v1")
    shadow = dead_letter(record, "model_missing", group="shadow-beta", version="v1")
    ids = replays.write({"real": real, "shadow": shadow})

    first = replays.replay("--keep-deadline")
    assert summary(first).startswith("replayed 1, skipped (already replayed) 1, refused")
    (sent,) = replays.sent()
    assert (sent.partition, sent.key, sent.value) == (4, b"alpha", record.value)
    dlq = replays.topics.name("dead_letters")
    # Whichever of the two dead letters was read first is the one replayed.
    (replay_of,) = {(value or b"").decode() for name, value in sent.headers if name == REPLAY_OF}
    assert replay_of in {f"{dlq}/{ids[k].replace(':', '/')}" for k in ("real", "shadow")}
    assert sent.headers == (*headers, (REPLAY_ATTEMPT, b"2"), (REPLAY_OF, replay_of.encode()))
    ledger = replays.ledger()
    entry = ledger[f"{replays.queries}/4/42#2"]
    assert entry["dead_letter"] == replay_of
    assert (entry["target_topic"], entry["request_id"]) == (replays.queries, real["request_id"])
    assert entry["bot_id"] == "alpha"

    second = replays.replay("--keep-deadline")
    assert summary(second).startswith("replayed 0, skipped (already replayed) 2")
    assert len(replays.sent()) == 1
    assert len(replays.ledger()) == 1


def test_fresh_deadline_stage_and_another_topic(replays: Replays, admin: AdminClient) -> None:
    elsewhere = f"{replays.prefix}elsewhere"
    admin.create_topics([NewTopic(elsewhere, 2, 1)])[elsewhere].result(30)
    sent_at = now_ms() - 600_000
    record = query_record("alpha", topic=replays.queries, ttl_ms=500, now_ms=sent_at)
    replays.write({"late": dead_letter(record, "deadline_exceeded")})

    before = now_ms()
    replays.replay("--to", elsewhere, "--stage", "beta", "--ttl", "2m")
    after = now_ms()
    (sent,) = replays.committed(elsewhere)
    query = orjson.loads(sent.value or b"")
    validate(MessageKind.QUERY, query)
    assert before + 120_000 <= query["deadline_ms"] <= after + 120_000
    assert "ttl_ms" not in query
    assert (query["sent_at_ms"], query["stage"]) == (sent_at, "beta")
    assert replays.sent() == []  # not also to the source topic


def test_dry_run_limit_loop_guard_held_back_and_unreadable(replays: Replays) -> None:
    again = query_record("alpha", topic=replays.queries, partition=1, offset=1, replay_attempt=1)
    letters: Letters = {
        "a": unknown_bot(replays, "alpha", 1),
        "b": unknown_bot(replays, "beta", 2),
        "c": unknown_bot(replays, "gamma", 3),
        "again": dead_letter(again, "unknown_bot"),  # a's query, failed after its replay
        "guarded": unknown_bot(replays, "delta", 4, replay_attempt=3),
        "malformed": dead_letter(
            query_record("alpha", topic=replays.queries, offset=5, value=b"\xff{"), "decode"
        ),
        "garbage": b"\x00 not a dead letter",
    }
    ids = replays.write(letters)

    dry = replays.replay("--dry-run")
    assert sum(" -> " in line for line in dry.output.splitlines()) == 4
    assert f"refused {ids['guarded']}: failed again after 3 replay(s)" in dry.output
    assert f"held back {ids['malformed']}: reason decode" in dry.output
    assert f"unreadable {ids['garbage']}: never replayed" in dry.output
    assert summary(dry) == (
        "would replay 4, skipped (already replayed) 0, refused (loop guard) 1, "
        "held back (malformed) 1, unreadable 1, not selected 0"
    )
    assert replays.sent() == []
    assert replays.ledger() == {}

    limited = replays.replay("--limit", "2", "--quiet")
    assert summary(limited).startswith("replayed 2,")
    assert "stopped at --limit" in summary(limited)
    assert len(limited.output.strip().splitlines()) == 1  # --quiet: the summary only
    assert len(replays.sent()) == 2

    rest = replays.replay()
    assert summary(rest).startswith(
        "replayed 2, skipped (already replayed) 2, refused (loop guard) 1"
    )
    assert len(replays.sent()) == 4

    named = replays.replay("--reason", "decode")
    assert summary(named).startswith("replayed 1,")
    assert "not selected 6" in summary(named)
    sent = replays.sent()
    assert [r.value for r in sent].count(b"\xff{") == 1  # not JSON: never rewritten
    assert sorted(replays.ledger()) == sorted(
        [
            f"{replays.queries}/1/1#1",
            f"{replays.queries}/1/1#2",
            f"{replays.queries}/2/2#1",
            f"{replays.queries}/3/3#1",
            f"{replays.queries}/0/5#1",
        ]
    )
    attempts = sorted((r.partition, dict(r.headers)[REPLAY_ATTEMPT]) for r in sent)
    assert attempts == [(0, b"1"), (1, b"1"), (1, b"2"), (2, b"1"), (3, b"1")]


def test_filters_choose_what_is_replayed_and_rate_paces(replays: Replays) -> None:
    letters: Letters = {f"alpha{i}": unknown_bot(replays, "alpha", 10 + i) for i in range(6)}
    letters["shadow"] = unknown_bot(replays, "alpha", 30, group="shadow-beta")
    letters["beta"] = unknown_bot(replays, "beta", 31)
    replays.write(letters)
    started = time.monotonic()
    result = replays.replay("--bot", "alpha", "--group", "real", "--rate", "20")
    elapsed = time.monotonic() - started
    assert summary(result).startswith("replayed 6,")
    assert "not selected 2" in summary(result)
    assert elapsed >= 5 / 20 * 0.8  # six sends at 20/s: five gaps of 50 ms at least
    assert {r.key for r in replays.sent()} == {b"alpha"}


def test_a_second_replay_fences_the_first(replays: Replays, kafka_settings: KafkaSettings) -> None:
    topics = ReplayTopics(replays.topics.name("dead_letters"), replays.topics.name("replays"))
    emitted: list[ReplayEvent] = []
    first = TransactionalSink(kafka_settings, topics, emitted.append)
    second = TransactionalSink(kafka_settings, topics, emitted.append)
    assert first.transactional_id == transactional_id(topics.dead_letters)
    try:
        first.start()
        second.start()  # takes over the transactional id

        def send_one() -> None:
            first.send(_event(replays), "k#1", b"{}")
            first.finish()

        with pytest.raises(FatalError, match="fenced this one"):
            send_one()
    finally:
        first.close()
        second.close()
    assert emitted == []
    assert replays.sent() == []


def _event(replays: Replays) -> ReplayEvent:
    value = unknown_bot(replays, "alpha", 1)
    outgoing = build_replay(value, replay_of="x/0/0", options=ReplayOptions(), now_ms=now_ms())
    item_record = InboundRecord(replays.topics.name("dead_letters"), 0, 0, None, b"")
    return ReplayEvent(Verdict.REPLAY, DeadLetterRecord(item_record, value), "replay 1", outgoing)
