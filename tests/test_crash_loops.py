"""Workers that die: a record that keeps killing them, and kills while retries are in flight.

Workers run as child processes under a small supervisor that restarts each one under the
same id and state directory, as systemd or Kubernetes would. Outcomes are counted in the
committed log (tests/kafka_log.py applies the transaction markers itself).
"""

from __future__ import annotations

import random
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetserve.client.query import make_query
from fleetserve.retry.state import RetryState, retry_headers
from support.bots import BotFactory, BuiltBots
from support.kafka import unique_name
from support.kafka_log import read_committed_log
from support.outcomes import (
    Supervised,
    committed_outcomes,
    exactly_once,
    model_path,
    send_to,
    unreadable_snapshot,
)
from support.serving import Harness, wait_until, worker_command

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=3, seed=37)


def first_retry(query: dict[str, Any], topic: str, *, offset: int) -> RetryState:
    """The retry state a pass writes after the query at ``topic[0]@offset`` failed once."""
    return RetryState(
        attempts=1,
        not_before_ms=0,
        first_failed_ms=query["sent_at_ms"],
        reason="model_load_failed",
        message="store unreadable",
        topic=topic,
        partition=0,
        offset=offset,
        timestamp_ms=query["sent_at_ms"],
    )


def test_a_record_that_kills_its_worker_twice_is_set_aside_as_poison(
    harness: Harness, tmp_path: Path
) -> None:
    """A native crash on one record (SIGKILL, no exception to catch) must not loop forever."""
    bot = harness.built.bot_ids[0]
    harness.deployer.deploy(harness.built.route(bot))
    argv = worker_command(
        harness,
        "w-poison",
        "--fault-kill-on-text",
        "KILL-ME",
        "--state-dir",
        str(tmp_path / "state"),
    )
    worker = Supervised(argv, tmp_path / "worker.log")
    try:
        wait_until(worker.assigned, 60, "the worker never got partitions")
        before = {send_to(harness, bot, f"what is my balance {i}") for i in range(5)}
        poison = send_to(harness, bot, "this one says KILL-ME")
        after = {send_to(harness, bot, f"block my card {i}") for i in range(5)}
        harness.producer.flush(10)
        names = [harness.topics.name("replies"), harness.topics.name("dead_letters")]
        expected = before | after | {poison}
        outcomes, log = committed_outcomes(harness.bootstrap, names, expected, timeout_s=60)
        deaths = list(worker.deaths)
        alive = worker.process.poll() is None
        queries = read_committed_log(harness.bootstrap, harness.topics.name("queries"))
        by_id = {orjson.loads(r.value or b"{}")["request_id"]: r.offset for r in queries.committed}
        answered_offsets = sorted(set(by_id.values()) - {by_id[r] for r in outcomes if r in by_id})
    finally:
        worker.stop()
    assert not log.open, [(r.topic, r.partition, r.offset) for r in log.open]
    missing = expected - outcomes.keys()
    assert not missing, (missing, answered_offsets)
    exactly_once(outcomes, expected)
    assert deaths == [-signal.SIGKILL, -signal.SIGKILL], deaths  # killed twice, then never
    assert alive, worker.log.read_text()[-3000:]
    (letter,) = outcomes[poison]
    assert (letter["reason"], letter["bot_id"]) == ("poison", bot)
    assert "died 2 times" in letter["message"]
    assert letter["source"]["topic"] == harness.topics.name("queries")
    assert all("top_k" in outcomes[rid][0] for rid in before | after)


def test_killing_workers_while_retries_are_in_flight_loses_and_doubles_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    """SIGKILLs every ~2 s while one bot's queries wait on the retry tier."""
    built = harness.built
    flaky, healthy = built.bot_ids[1], built.bot_ids[2]
    for bot in (flaky, healthy):
        harness.deployer.deploy(built.route(bot))
    extra = (
        "--retry-base-ms", "200", "--retry-max-ms", "4000", "--retry-max-attempts", "6",
        "--max-batch", "200", "--max-bot-share", "0.05",
    )  # fmt: skip
    workers = {
        name: Supervised(
            worker_command(harness, name, *extra, "--state-dir", str(tmp_path / name)),
            tmp_path / f"{name}.log",
        )
        for name in ("w1", "w2")
    }
    chooser = random.Random(7)  # noqa: S311 - a reproducible schedule, not a secret
    sent: set[str] = set()
    try:
        for name, worker in workers.items():
            wait_until(worker.assigned, 60, f"{name} never got partitions")
        with unreadable_snapshot(model_path(built, flaky)):
            started = time.monotonic()
            next_kill = started + 1.5
            while time.monotonic() - started < 12:
                sent.add(send_to(harness, flaky, f"flaky {len(sent)}", partition=len(sent) % 12))
                sent.add(send_to(harness, healthy, f"steady {len(sent)}", partition=len(sent) % 12))
                harness.producer.poll(0)
                if time.monotonic() >= next_kill:
                    workers[chooser.choice(sorted(workers))].kill()
                    next_kill += 2.0
                time.sleep(0.01)
            harness.producer.flush(10)
        names = [harness.topics.name("replies"), harness.topics.name("dead_letters")]
        outcomes, log = committed_outcomes(harness.bootstrap, names, sent, timeout_s=180)
        kills = {name: len(w.deaths) for name, w in workers.items()}
        retry_log = read_committed_log(harness.bootstrap, harness.topics.name("retry"))
    finally:
        for worker in workers.values():
            worker.stop()
    doubled = {rid: outcomes[rid] for rid in sent if len(outcomes.get(rid, [])) > 1}
    for rid, values in doubled.items():  # what a duplicate looked like, to tell its cause
        print("DOUBLED", rid, [(v.get("reason"), v["source"], v["worker"]) for v in values])
        for fate in ("committed", "aborted", "open"):
            for r in getattr(retry_log, fate):
                if r.value and rid.encode() in r.value:
                    print(
                        "  retry record",
                        fate,
                        r.partition,
                        r.offset,
                        r.producer_id,
                        dict(r.headers).get("fleetserve_retry-attempt"),
                    )
    exactly_once(outcomes, sent)
    kinds = {("reply" if "top_k" in o else o["reason"]) for rid in sent for o in outcomes[rid]}
    assert kinds <= {"reply", "retries_exhausted"}, kinds
    retried = [o for rid in sent for o in outcomes[rid] if o["source"].get("attempt", 1) > 1]
    assert retried, "no query was answered through the retry tier"
    assert sum(kills.values()) >= 4, kills
    print(
        f"retry kills: {len(sent)} queries, kills {kills}, aborted by the kills: "
        f"{len(log.aborted)} outcomes, {len(retry_log.aborted)} retry records"
    )


def test_a_retry_step_written_twice_is_answered_once_even_across_workers(
    harness: Harness, producer_factory: Any
) -> None:
    """The copy a crashed pass leaves (Tansu shows aborted records; at-least-once repeats a
    pass) must not answer a query twice, whichever worker reads each copy."""
    bot = harness.built.bot_ids[2]
    harness.deployer.deploy(harness.built.route(bot))
    retry_topic = harness.topics.name("retry")
    query = make_query(bot, "where is my package", request_id="twice")
    state = first_retry(query, harness.topics.name("queries"), offset=7)
    value, headers = orjson.dumps(query), retry_headers(state)
    writer = producer_factory(**{"transactional.id": unique_name("twice"), "linger.ms": 0})
    writer.init_transactions(10)
    writer.begin_transaction()
    writer.produce(retry_topic, key=bot.encode(), value=value, headers=headers, partition=0)
    writer.abort_transaction(10)  # the crashed pass's copy
    first = harness.start_worker()
    names = [harness.topics.name("replies"), harness.topics.name("dead_letters")]
    writer.begin_transaction()
    writer.produce(retry_topic, key=bot.encode(), value=value, headers=headers, partition=0)
    writer.commit_transaction(10)  # the copy of the pass that re-read the query
    outcomes, _ = committed_outcomes(harness.bootstrap, names, {"twice"}, timeout_s=30)
    first.stop()
    # A third copy, read by a worker that never saw the first two: it reads back instead.
    writer.begin_transaction()
    writer.produce(retry_topic, key=bot.encode(), value=value, headers=headers, partition=0)
    writer.commit_transaction(10)
    harness.start_worker()
    later = harness.send(bot, "a query behind them")
    outcomes, _ = committed_outcomes(harness.bootstrap, names, {"twice", later}, timeout_s=30)
    exactly_once(outcomes, {"twice", later})
    (reply,) = outcomes["twice"]
    assert reply["source"] == {"topic": state.topic, "partition": 0, "offset": 7, "attempt": 2}


def test_a_query_whose_uncommitted_retry_is_visible_is_answered_once(
    harness: Harness, producer_factory: Any
) -> None:
    """A pass wrote a query's retry record and did not commit; the query is read again.

    Tansu hands the aborted retry record to read_committed readers (so does any broker under
    at-least-once): the re-run must adopt that decision, not answer the query beside it.
    On Apache Kafka the record is hidden and the re-run answers the query itself.
    """
    bot = harness.built.bot_ids[2]
    harness.deployer.deploy(harness.built.route(bot))
    queries = harness.topics.name("queries")
    query = make_query(bot, "where is my package", request_id="re-read")
    delivered: list[int | None] = []
    harness.producer.produce(
        queries,
        key=bot.encode(),
        value=orjson.dumps(query),
        partition=0,
        on_delivery=lambda _err, msg: delivered.append(msg.offset()),
    )
    harness.producer.flush(10)
    (offset,) = delivered
    assert offset is not None
    state = first_retry(query, queries, offset=offset)
    retry, txn = harness.topics.name("retry"), unique_name("re-read")
    crashed = producer_factory(**{"transactional.id": txn, "linger.ms": 0})
    crashed.init_transactions(10)
    crashed.begin_transaction()
    crashed.produce(
        retry, key=bot.encode(), value=orjson.dumps(query), headers=retry_headers(state)
    )
    crashed.flush(10)  # the pass's retry record is written; the pass never commits
    # Its successor under the same transactional id fences it (aborting its transaction, as
    # a restarted worker does), and its next pass commits another query's retry record.
    successor = producer_factory(**{"transactional.id": txn, "linger.ms": 0})
    successor.init_transactions(10)
    other = make_query(bot, "is my card blocked", request_id="other")
    elsewhere = replace(state, offset=offset + 1_000_000)
    successor.begin_transaction()
    successor.produce(
        retry, key=bot.encode(), value=orjson.dumps(other), headers=retry_headers(elsewhere)
    )
    successor.commit_transaction(10)
    harness.start_worker()
    later = send_to(harness, bot, "a query behind it", partition=0)
    names = [harness.topics.name("replies"), harness.topics.name("dead_letters")]
    expected = {"re-read", "other", later}
    outcomes, _ = committed_outcomes(harness.bootstrap, names, expected, timeout_s=30)
    exactly_once(outcomes, expected)
    (reply,) = outcomes["re-read"]
    assert "top_k" in reply, reply
    assert reply["source"]["offset"] == offset
