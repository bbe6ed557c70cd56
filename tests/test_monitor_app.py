"""`fleetserve monitor` against the session broker: bot-stats folded into its tables, served
as JSON, a record read twice counted once, and the tables restored after a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from fleetserve.stats.accumulator import StatsAccumulator, StatsIdentity
from fleetserve.stats.facts import OutcomeFacts
from fleetserve.stats.summary import StatsKey
from fleetserve.topics.spec import TopicSet
from monitor_harness import Monitor
from support.kafka import ProducerFactory
from support.serving import wait_until

pytestmark = pytest.mark.kafka


def flush(producer: Producer, topic: str, worker: str, replies: int, dead: int) -> int:
    """One worker flush: ``replies`` replies of bank v1 and ``dead`` dead letters of shop."""
    clock = [int(time.time() * 1000)]
    accumulator = StatsAccumulator(
        StatsIdentity(worker, "g", clock[0] - 1_000), interval_ms=1, clock_ms=lambda: clock[0]
    )
    facts = [OutcomeFacts(StatsKey("bank", "v1", "real"), confidence=0.9, margin=0.5)] * replies
    facts += [OutcomeFacts(StatsKey("shop", None, "real"), reason="no_deployment")] * dead
    accumulator.committed(facts, flushed=False)
    clock[0] += 5
    records = accumulator.flush_records()
    for key, value in records:
        producer.produce(topic, key=key, value=value)
        producer.produce(topic, key=key, value=value)  # read twice: counted once
    producer.flush(10)
    return len(records)


def counts(monitor: Monitor) -> dict[str, Any]:
    rows = monitor.get("/api/overview")
    return {r["bot_id"]: (r["last_hour"]["replies"], r["last_hour"]["dead_letters"]) for r in rows}


def test_tables_fold_once_and_survive_a_restart(
    declared: TopicSet, producer_factory: ProducerFactory, kafka_bootstrap: str, tmp_path: Path
) -> None:
    producer = producer_factory()
    topic = declared.name("bot_stats")
    monitor = Monitor(kafka_bootstrap, declared.prefix, tmp_path, "t")
    try:
        wait_until(monitor.ready, 60, f"monitor never came up; see {monitor.log.name}")
        flush(producer, topic, "w1", replies=30, dead=2)
        flush(producer, topic, "w2", replies=12, dead=0)
        wait_until(lambda: counts(monitor) == {"bank": (42, 0), "shop": (0, 2)}, 30, "not folded")
        status = monitor.get("/api/status")
        assert (status["folded"], status["duplicates"]) == (3, 3)
        bot = monitor.get("/api/bots/bank")
        [view] = bot["versions"]
        assert view["last_hour"]["mean_confidence"] == pytest.approx(0.9)
        assert view["sparkline"][-1] + view["sparkline"][-2] == 42
    finally:
        monitor.stop()
    again = Monitor(kafka_bootstrap, declared.prefix, tmp_path, "t")
    try:
        wait_until(again.ready, 60, f"monitor never came back; see {again.log.name}")
        wait_until(lambda: counts(again) == {"bank": (42, 0), "shop": (0, 2)}, 30, "not restored")
        flush(producer, topic, "w1", replies=8, dead=0)
        wait_until(lambda: counts(again)["bank"] == (50, 0), 30, "not folded after restart")
    finally:
        again.stop()
