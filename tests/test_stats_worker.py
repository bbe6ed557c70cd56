"""Per-bot statistics at the source: a real worker's bot-stats records add up, exactly, to
the replies and dead letters it committed, per bot, version and stage."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import orjson
import pytest

from fleetserve.contracts.codec import decode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.stats.record import parse_record
from fleetserve.stats.summary import StatsKey, Summary
from support.bots import BotFactory, BuiltBots
from support.kafka import ConsumerFactory
from support.serving import Harness, assert_exactly_once

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=2, seed=17)


def read_stats(
    consumers: ConsumerFactory, topic: str, settle_s: float = 2.0
) -> list[dict[str, Any]]:
    """Every committed bot-stats record, once nothing new came for ``settle_s``."""
    consumer = consumers(topic, **{"isolation.level": "read_committed"})
    records: list[dict[str, Any]] = []
    quiet_since = time.monotonic() + 10  # the group join comes first
    while time.monotonic() - quiet_since < settle_s:
        batch = [m for m in consumer.consume(500, 0.2) if m.error() is None]
        if batch:
            quiet_since = time.monotonic()
        records += [decode(MessageKind.BOT_STATS, m.value() or b"") for m in batch]
    consumer.unsubscribe()
    return records


def test_bot_stats_count_every_committed_outcome_once(harness: Harness) -> None:
    bots = harness.built.bot_ids
    for bot in bots:
        harness.deployer.deploy(harness.built.route(bot))
    running = harness.start_worker(stats_interval_ms=300)
    expected = set()
    for n in range(120):
        bot = bots[n % 2]
        expected.add(harness.send(bot, f"what is my balance number {n}"))
        if n == 59:  # two bursts, more than an interval apart: at least two flushes
            harness.producer.flush(10)
            time.sleep(1.5)
    expected.add(harness.send("no-such-bot", "hello"))
    late = harness.send(bots[0], "too late", deadline_ms=int(time.time() * 1000) - 1000)
    expected.add(late)
    outcomes = harness.outcomes(expected)
    assert_exactly_once(outcomes, expected)
    running.stop()  # a clean stop flushes what is pending

    truth: dict[StatsKey, Counter[str]] = {}
    for [(kind, record)] in outcomes.values():
        if kind == "reply":
            key = StatsKey(record["bot_id"], record["model"]["version"], record["stage"])
            truth.setdefault(key, Counter())["replies"] += 1
            truth[key]["fallbacks"] += record["fallback"]
        else:
            model = record["model"] or {}
            key = StatsKey(record["bot_id"], model.get("version"), record["stage"])
            truth.setdefault(key, Counter())[record["reason"]] += 1

    records = read_stats(harness.consumers, harness.topics.name("bot_stats"))
    totals: dict[StatsKey, Summary] = {}
    for record in records:
        key, summary = parse_record(record)
        totals.setdefault(key, Summary()).merge(summary)
        assert record["window_start_ms"] <= record["window_end_ms"]
    counted = {
        key: Counter({"replies": s.replies, "fallbacks": s.fallbacks, **s.dead_letters})
        for key, s in totals.items()
    }
    assert {k: +v for k, v in counted.items()} == {k: +v for k, v in truth.items()}
    # The summaries were flushed over several intervals, each flush numbered once.
    flushes = {(r["worker"]["id"], r["seq"]) for r in records}
    assert len(flushes) >= 2
    assert len(records) == len(
        {
            (r["worker"]["id"], r["seq"], r["bot_id"], r["model_version"], r["stage"])
            for r in records
        }
    )
    assert sum(s.replies for s in totals.values()) == 120
    assert orjson.dumps(records)  # JSON all the way
