"""The serving worker end to end: real broker, real ONNX snapshots, real consumer groups.

Every test counts outcomes in the committed (read_committed) output: each query must end
in exactly one reply or one dead letter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from fleetserve.core.route import Route
from fleetserve.store.base import MODEL_FILE
from support.bots import BotFactory, BuiltBots
from support.serving import Harness, assert_exactly_once, collect, wait_until, worker_command

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=5, seed=11)


# -- answers, bad input, operations ------------------------------------------------------------


def test_real_answers_and_every_bad_input_dead_lettered_exactly_once(harness: Harness) -> None:
    built = harness.built
    good, other, beta_only, corrupt = built.bot_ids[:4]
    for bot in (good, other, corrupt):
        harness.deployer.deploy(built.route(bot))
    harness.deployer.deploy(built.route(beta_only, stage="beta"))
    missing = Route(other + "-x", "real", "0123456789abcdef", "a" * 64)
    harness.deployer.deploy(missing)
    corrupt_file = built.store_dir / corrupt / built.versions[corrupt] / MODEL_FILE
    original = corrupt_file.read_bytes()
    corrupt_file.write_bytes(original[:-8] + bytes(8))
    try:
        running = harness.start_worker()
        expected_intent: dict[str, str] = {}
        for bot in (good, other):
            for utterance in built.bots[bot].utterances[:15]:
                expected_intent[harness.send(bot, utterance.text)] = utterance.intent
        bad = {
            harness.send("ghost-bot", "hello"): "unknown_bot",
            harness.send(beta_only, "hello"): "no_deployment",
            harness.send(missing.bot_id, "hello"): "model_missing",
            harness.send(corrupt, "hello"): "model_corrupt",
            harness.send(good, "late", deadline_ms=1_700_000_000_000): "deadline_exceeded",
        }
        queries = harness.topics.name("queries")
        harness.producer.produce(queries, key=good.encode(), value=b'{"version": 1, "bot_id": ')
        no_text = {"version": 1, "request_id": "no-text", "bot_id": good}
        harness.producer.produce(queries, key=good.encode(), value=orjson.dumps(no_text))
        expected = set(expected_intent) | set(bad) | {"no-text"}
        outcomes = harness.outcomes(expected)
        assert_exactly_once(outcomes, expected)
        for rid, reason in bad.items():
            ((kind, record),) = outcomes[rid]
            assert (kind, record["reason"]) == ("dead_letter", reason), record["message"]
        assert outcomes["no-text"][0][1]["reason"] == "schema"
        assert [r["reason"] for _, r in outcomes["?"]] == ["decode"]  # no request id to read
        corrupt_rid = next(rid for rid, why in bad.items() if why == "model_corrupt")
        assert outcomes[corrupt_rid][0][1]["model"]["version"] == built.versions[corrupt]
        replies = [outcomes[rid][0] for rid in expected_intent]
        assert all(kind == "reply" for kind, _ in replies)
        right = sum(r["top_k"][0]["intent"] == expected_intent[r["request_id"]] for _, r in replies)
        assert right >= 0.8 * len(replies)  # training utterances, real models
        versions = {r["model"]["version"] for _, r in replies}
        assert versions == {built.versions[good], built.versions[other]}

        with urllib.request.urlopen(running.url("/metrics"), timeout=5) as response:  # noqa: S310
            metrics = response.read().decode()
        assert 'fleetserve_dead_letters_total{reason="model_corrupt"} 1.0' in metrics
        with urllib.request.urlopen(running.url("/readyz"), timeout=5) as response:  # noqa: S310
            assert response.status == 200

        asked = harness.cli("ask", good, built.bots[good].utterances[0].text)
        assert asked.exit_code == 0, asked.output
        assert built.versions[good][:8] in asked.output
        # The client's own start-up is reported apart from the round trip, not inside it.
        assert "(client start-up " in asked.output, asked.output
    finally:
        corrupt_file.write_bytes(original)


# -- live deployments ----------------------------------------------------------------------


def test_live_swap_and_rollback_with_no_failed_query(harness: Harness) -> None:
    built = harness.built
    bot = built.bot_ids[0]
    v1 = built.versions[bot]
    v2 = built.build(bot, seed=1)
    assert v1 != v2
    harness.deployer.deploy(built.route(bot, v1))
    harness.start_worker()
    committed = {"isolation.level": "read_committed"}
    replies = harness.consumers(harness.topics.name("replies"), **committed)
    seen: list[str] = []
    sent: set[str] = set()

    def ask_until(version: str, timeout_s: float = 20) -> None:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            sent.add(harness.send(bot, "what is my balance"))
            harness.producer.flush(5)
            for message in replies.consume(100, 0.1):
                if message.error() is None:
                    seen.append(orjson.loads(message.value() or b"{}")["model"]["version"])
            if seen and seen[-1] == version:
                return
        raise AssertionError(f"{version} never answered; saw {seen[-5:]}")

    ask_until(v1)
    harness.deployer.deploy(built.route(bot, v2))
    ask_until(v2)
    harness.deployer.rollback(bot)
    ask_until(v1)
    # Versions change in the order of the deployments: no flapping back and forth.
    changes = [v for i, v in enumerate(seen) if i == 0 or seen[i - 1] != v]
    assert changes == [v1, v2, v1]
    outcomes = harness.outcomes(sent)
    assert_exactly_once(outcomes, sent)
    assert all(kind == "reply" for rid in sent for kind, _ in outcomes[rid])


# -- shadow groups -------------------------------------------------------------------------


def test_a_beta_shadow_group_answers_the_same_traffic(
    topic_factory: Callable[..., str], harness: Harness
) -> None:
    # topic_factory comes first so its topic is deleted after the workers and consumers
    # are closed: librdkafka 2.16 can crash on metadata of a topic deleted under it.
    built = harness.built
    bot = built.bot_ids[1]
    beta = built.build(bot, seed=2)
    harness.deployer.deploy(built.route(bot))
    harness.deployer.deploy(built.route(bot, beta, stage="beta"))
    shadow_topic = topic_factory(partitions=3)
    harness.start_worker(group="serve-real", stage="real")
    harness.start_worker(group="shadow-beta", stage="beta", replies_topic=shadow_topic)
    sent = {harness.send(bot, u.text) for u in built.bots[bot].utterances[:20]}
    real = harness.outcomes(sent, "replies")
    shadow = collect(harness.consumers, [shadow_topic], sent)
    assert_exactly_once(real, sent)
    assert_exactly_once(shadow, sent)
    assert {r["stage"] for rid in sent for _, r in real[rid]} == {"real"}
    assert {r["model"]["version"] for rid in sent for _, r in shadow[rid]} == {beta}
    report = harness.cli("shadow-report", "--shadow-topic", shadow_topic, "--json")
    assert report.exit_code == 0, report.output
    assert bot in report.output


# -- memory budget -------------------------------------------------------------------------


def test_eviction_under_a_small_budget_still_answers_everything(harness: Harness) -> None:
    bots = harness.built.bot_ids[:4]
    for bot in bots:
        harness.deployer.deploy(harness.built.route(bot))
    running = harness.start_worker(max_models=2, max_batch=4)
    sent: set[str] = set()
    for round_ in range(6):
        for bot in bots:
            sent.add(harness.send(bot, f"question {round_}"))
            harness.producer.flush(5)
            time.sleep(0.02)
    outcomes = harness.outcomes(sent)
    assert_exactly_once(outcomes, sent)
    assert all(kind == "reply" for rid in sent for kind, _ in outcomes[rid])
    stats = running.worker.cache.stats()
    assert stats.evictions >= 2
    assert stats.resident_models <= 2


# -- graceful shutdown ---------------------------------------------------------------------


def test_sigterm_mid_traffic_commits_the_pass_and_loses_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    bots = harness.built.bot_ids[:3]
    for bot in bots:
        harness.deployer.deploy(harness.built.route(bot))
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            worker_command(harness, "sigterm-1"),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("FLEETSERVE_")},
        )
    sent: set[str] = set()
    try:
        wait_until(lambda: b"assignment +" in log.read_bytes(), 60, "worker never got partitions")
        for i in range(300):
            sent.add(harness.send(bots[i % 3], f"steady {i}"))
            if i == 150:
                harness.producer.flush(5)
                process.send_signal(signal.SIGTERM)
            time.sleep(0.005)
        harness.producer.flush(10)
        assert process.wait(30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert b"SIGTERM received" in log.read_bytes()
    harness.start_worker()  # the same group picks up where the first one stopped
    outcomes = harness.outcomes(sent)
    assert_exactly_once(outcomes, sent)
    assert all(kind == "reply" for rid in sent for kind, _ in outcomes[rid])
