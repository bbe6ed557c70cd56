"""Fault tests: transient store failures, a corrupt snapshot, a killed worker, a stalled broker.

Each runs against the real broker with real snapshots and counts every query's outcome in
the committed output: exactly one reply or one dead letter, nothing lost, nothing doubled.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Message, Producer

from fleetserve.broker.embedded import EmbeddedBroker
from fleetserve.client.query import make_query
from fleetserve.config.settings import KafkaSettings
from fleetserve.deadletters.headers import DLT_REASON, REPLAY_ATTEMPT
from fleetserve.kafka.clients import admin_client
from fleetserve.kafka.headers import header_int
from fleetserve.kafka.records import inbound_record
from fleetserve.retry.state import ATTEMPT
from fleetserve.topics.apply import apply_topics
from fleetserve.topics.loader import load_topics
from support.bots import BotFactory, BuiltBots, Deployer
from support.kafka import unique_name
from support.kafka_log import read_committed_log
from support.outcomes import (
    committed_outcomes,
    exactly_once,
    has_partitions,
    model_path,
    send_to,
    spawn,
    unreadable_snapshot,
)
from support.serving import (
    Harness,
    assert_exactly_once,
    wait_until,
    worker_argv,
    worker_command,
)

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=5, seed=23)


def read_at_least(consumer: Consumer, n: int, timeout_s: float) -> list[Message]:
    """At least ``n`` records (then whatever else arrives within a second), or fail."""
    seen: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(seen) < n:
        seen += [m for m in consumer.consume(100, 0.2) if m.error() is None]
    assert len(seen) >= n, f"only {len(seen)} of {n} records arrived"
    seen += [m for m in consumer.consume(100, 1.0) if m.error() is None]
    return seen


def metric(harness_worker: Any, name: str, label: str) -> float:
    value: float = harness_worker.worker.registry.get_sample_value(name, {"reason": label}) or 0.0
    return value


# -- the retry tier ---------------------------------------------------------------------------


def test_transient_store_failures_retry_with_backoff_and_then_give_up(harness: Harness) -> None:
    built = harness.built
    flaky, broken, healthy = built.bot_ids[:3]
    for bot in (flaky, broken, healthy):
        harness.deployer.deploy(built.route(bot))
    running = harness.start_worker(retry_base_ms=500, retry_max_ms=2000, retry_max_attempts=6)
    with unreadable_snapshot(model_path(built, broken)):
        with unreadable_snapshot(model_path(built, flaky)):
            # One partition for all three bots: retries must not hold up the healthy bot.
            first = {send_to(harness, flaky, f"flaky {i}") for i in range(5)}
            first |= {send_to(harness, broken, f"broken {i}") for i in range(5)}
            healthy_ids = {send_to(harness, healthy, f"healthy {i}") for i in range(5)}
            harness.producer.flush(10)
            wait_until(
                lambda: metric(running, "fleetserve_retries_total", "model_load_failed") >= 10,
                30,
                "transient failures never reached the retry tier",
            )
        # The flaky bot's store is readable again; the broken one stays unreadable.
        expected = first | healthy_ids
        outcomes = harness.outcomes(expected)
    assert_exactly_once(outcomes, expected)
    by_bot: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for rid in expected:
        ((kind, record),) = outcomes[rid]
        by_bot.setdefault(record["bot_id"], []).append((kind, record))
    assert {kind for kind, _ in by_bot[flaky]} == {"reply"}
    assert {kind for kind, _ in by_bot[healthy]} == {"reply"}
    letters = [record for kind, record in by_bot[broken]]
    assert {kind for kind, _ in by_bot[broken]} == {"dead_letter"}
    for letter in letters:
        assert (letter["reason"], letter["phase"], letter["attempts"]) == (
            "retries_exhausted",
            "load",
            6,
        )
        assert "reading the snapshot failed" in letter["message"]
        assert letter["source"]["topic"] == harness.topics.name("queries")
        assert letter["original"]["headers"] == []  # the retry tier's headers are not kept
        # Five backoffs of at least half of 500, 1000, 2000, 2000, 2000 ms.
        assert letter["first_failed_at_ms"] + 3750 <= letter["last_failed_at_ms"]
        assert letter["model"]["version"] == built.versions[broken]
    # The retry topic itself: each retry carries its attempt and due time in headers.
    retries = harness.consumers(
        harness.topics.name("retry"), **{"isolation.level": "read_committed"}
    )
    seen = read_at_least(retries, 10 + 5 * 4, 20)
    attempts = sorted(header_int(inbound_record(m).headers, ATTEMPT) for m in seen)
    assert attempts.count(1) == 10  # every failing query's first retry
    assert max(attempts) == 5  # the 6th try is the last: it ends in a dead letter


# -- a corrupt snapshot -----------------------------------------------------------------------


def test_a_corrupt_snapshot_fails_only_its_bot_and_says_why(harness: Harness) -> None:
    built = harness.built
    corrupt, *others = built.bot_ids[:4]
    for bot in built.bot_ids[:4]:
        harness.deployer.deploy(built.route(bot))
    path = model_path(built, corrupt)
    original = path.read_bytes()
    flipped = bytearray(original)
    for i in range(len(flipped) // 3, len(flipped) // 3 + 16):
        flipped[i] ^= 0xFF
    path.write_bytes(bytes(flipped))
    try:
        harness.start_worker()
        bad = {harness.send(corrupt, u.text) for u in built.bots[corrupt].utterances[:10]}
        good = {
            harness.send(bot, u.text) for bot in others for u in built.bots[bot].utterances[:10]
        }
        outcomes = harness.outcomes(bad | good)
    finally:
        path.write_bytes(original)
    assert_exactly_once(outcomes, bad | good)
    for rid in bad:
        ((kind, letter),) = outcomes[rid]
        assert (kind, letter["reason"], letter["phase"]) == ("dead_letter", "model_corrupt", "load")
        assert "sha256" in letter["message"]
        assert letter["model"] == {
            "version": built.versions[corrupt],
            "sha256": built.sha256s[(corrupt, built.versions[corrupt])],
            "stage": "real",
        }
        assert letter["attempts"] == 1  # corrupt is not transient: no retry tier
    assert all(outcomes[rid][0][0] == "reply" for rid in good)
    dlq = harness.consumers(
        harness.topics.name("dead_letters"), **{"isolation.level": "read_committed"}
    )
    headers = [dict(m.headers() or []) for m in read_at_least(dlq, len(bad), 20)]
    assert [h[DLT_REASON] for h in headers] == [b"model_corrupt"] * len(bad)


# -- a killed worker --------------------------------------------------------------------------


def steady_load(harness: Harness, bots: list[str], count: int, gap_s: float) -> set[str]:
    sent = set()
    for i in range(count):
        sent.add(harness.send(bots[i % len(bots)], f"steady question {i}"))
        if i % 20 == 0:
            harness.producer.poll(0)
        time.sleep(gap_s)
    harness.producer.flush(10)
    return sent


def test_a_worker_killed_mid_traffic_loses_and_doubles_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    bots = harness.built.bot_ids
    for bot in bots:
        harness.deployer.deploy(harness.built.route(bot))
    logs = {name: tmp_path / f"{name}.log" for name in ("w1", "w2")}
    workers = {name: spawn(worker_command(harness, name), log) for name, log in logs.items()}
    try:
        for name, path in logs.items():
            wait_until(partial(has_partitions, path), 60, f"{name} never got partitions")
        killer = threading.Timer(2.5, workers["w1"].send_signal, (signal.SIGKILL,))
        killer.start()
        sent = steady_load(harness, bots, 600, 0.01)
        killer.join()
        assert workers["w1"].wait(10) == -signal.SIGKILL
        # A supervisor restarts it under the same id: its transactional.id fences the dead
        # incarnation, whose open transaction is aborted at once instead of after 15 s.
        workers["w1"] = spawn(worker_command(harness, "w1"), logs["w1"])
        sent |= steady_load(harness, bots, 100, 0.005)
        names = [harness.topics.name("replies"), harness.topics.name("dead_letters")]
        outcomes, committed = committed_outcomes(harness.bootstrap, names, sent)
    finally:
        for process in workers.values():
            process.kill()
            process.wait(10)
    exactly_once(outcomes, sent)
    kinds = {("reply" if "top_k" in o else o["reason"]) for rid in sent for o in outcomes[rid]}
    assert kinds == {"reply"}
    assert not committed.open
    print(f"crash: {len(sent)} queries, {len(committed.aborted)} aborted outputs left by the kill")


# -- a stalled broker -------------------------------------------------------------------------


def test_a_stalled_broker_ends_in_answers_and_deadline_dead_letters(
    built: BuiltBots, tmp_path: Path
) -> None:
    """SIGSTOP the broker under load for 8 s; the worker recovers by itself."""
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        kafka = KafkaSettings(bootstrap)
        prefix = unique_name("stall") + "."
        topics = load_topics(None, "local", prefix)
        apply_topics(admin_client(kafka), topics)
        deployer = Deployer(kafka, topics.name("deployments"))
        bots = built.bot_ids[:3]
        for bot in bots:
            deployer.deploy(built.route(bot))
        log = tmp_path / "worker.log"
        worker = spawn(
            worker_argv(bootstrap, prefix, built.store_dir, "stall-real", "stall-1"), log
        )
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        try:
            wait_until(partial(has_partitions, log), 60, "worker never got partitions")
            queries = topics.name("queries")

            def ask(bot: str, ttl_ms: int) -> str:
                query = make_query(bot, "how do I reset my password", ttl_ms=ttl_ms)
                producer.produce(queries, key=bot.encode(), value=orjson.dumps(query))
                producer.poll(0)
                request_id: str = query["request_id"]
                return request_id

            assert broker.pid is not None
            sent = stall_under_load(broker.pid, lambda i: ask(bots[i % 3], 3000))
            # After the stall, queries with time to spare must all be answered again.
            after = {ask(bots[i % 3], 60_000) for i in range(60)}
            assert producer.flush(30) == 0
            names = [topics.name("replies"), topics.name("dead_letters")]
            outcomes, _committed = committed_outcomes(bootstrap, names, sent | after)
            assert worker.poll() is None, "the worker exited: " + log.read_text()[-2000:]
        finally:
            worker.kill()
            worker.wait(10)
    exactly_once(outcomes, sent | after)
    assert all("top_k" in outcomes[rid][0] for rid in after)
    kinds = Counter("reply" if "top_k" in o else o["reason"] for rid in sent for o in outcomes[rid])
    assert set(kinds) == {"reply", "deadline_exceeded"}, kinds
    late = [o for rid in sent for o in outcomes[rid] if o.get("reason") == "deadline_exceeded"]
    assert all(o["deadline_ms"] < o["dead_lettered_at_ms"] for o in late)
    assert all(o["phase"] == "route" for o in late)  # no inference was spent on them
    print(f"stall: {dict(kinds)}")


def stall_under_load(broker_pid: int, ask: Callable[[int], str]) -> set[str]:
    """Ask for 14 s with the broker stopped (SIGSTOP) from 2 s to 10 s."""
    sent: set[str] = set()
    started = time.monotonic()
    resume = threading.Timer(10, os.kill, (broker_pid, signal.SIGCONT))
    resume.start()
    stopped = False
    while time.monotonic() - started < 14:
        sent.add(ask(len(sent)))
        if time.monotonic() - started > 2 and not stopped:
            os.kill(broker_pid, signal.SIGSTOP)
            stopped = True
        time.sleep(0.02)
    resume.join()
    return sent


# -- replay round trip ------------------------------------------------------------------------


def test_fixed_then_replayed_twice_every_dead_letter_is_answered_once(harness: Harness) -> None:
    built = harness.built
    late_bot, other = built.bot_ids[3], built.bot_ids[4]
    harness.deployer.deploy(built.route(other))
    harness.start_worker()
    utterances = built.bots[late_bot].utterances[:8]
    failed = {harness.send(late_bot, u.text, ttl_ms=60_000) for u in utterances}
    failed.add(harness.send(late_bot, "no deadline at all"))
    fine = {harness.send(other, "hello there")}
    names = [harness.topics.name("replies"), harness.topics.name("dead_letters")]
    before, _ = committed_outcomes(harness.bootstrap, names, failed | fine)
    exactly_once(before, failed | fine)
    assert {o["reason"] for rid in failed for o in before[rid]} == {"unknown_bot"}

    harness.deployer.deploy(built.route(late_bot))  # the fix
    first = harness.cli("dlq", "replay", "--bot", late_bot, "--reason", "unknown_bot")
    second = harness.cli("dlq", "replay", "--bot", late_bot, "--reason", "unknown_bot")
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    deadline = time.monotonic() + 60
    while True:
        after, _log = committed_outcomes(harness.bootstrap, names, failed | fine)
        replies = Counter(o["request_id"] for rid in failed for o in after[rid] if "top_k" in o)
        if set(replies) >= failed or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert replies == dict.fromkeys(failed, 1), replies  # answered, and only once
    letters = Counter(o["request_id"] for rid in failed for o in after[rid] if "reason" in o)
    assert letters == dict.fromkeys(failed, 1)  # the original dead letters, nothing new
    versions = {o["model"]["version"] for rid in failed for o in after[rid] if "top_k" in o}
    assert versions == {built.versions[late_bot]}
    queries = read_committed_log(harness.bootstrap, harness.topics.name("queries"))
    replayed = [r for r in queries.committed if dict(r.headers).get(REPLAY_ATTEMPT) == b"1"]
    assert len(replayed) == len(failed)  # the second run sent nothing
