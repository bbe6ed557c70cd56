"""The deployments tailer against the real broker: catch up, follow live changes, stop."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer

from fleetserve.config.settings import KafkaSettings
from fleetserve.core.route import Route
from fleetserve.errors import ContractError, KafkaUnavailable, QueryFailed
from fleetserve.kafka import scan
from fleetserve.kafka import tailer as tailer_module
from fleetserve.kafka.scan import CatchUp
from fleetserve.routing.table import RouteChange, RoutingTable
from fleetserve.routing.tailer import DeploymentTailer

pytestmark = pytest.mark.kafka

SHA_1 = "1" * 64
SHA_2 = "2" * 64
SHA_3 = "3" * 64
WAIT_S = 10.0  # generous bound for a change to show up; the target is 2 s

TailerFactory = Callable[..., DeploymentTailer]


@pytest.fixture
def tailer_factory(kafka_settings: KafkaSettings) -> Iterator[TailerFactory]:
    """Started tailers on fresh tables, stopped after the test."""
    started: list[DeploymentTailer] = []

    def make(topic: str, table: RoutingTable | None = None, **kwargs: Any) -> DeploymentTailer:
        table = RoutingTable() if table is None else table  # an empty table is falsy
        tailer = DeploymentTailer(kafka_settings, topic, table, **kwargs)
        tailer.start()
        started.append(tailer)
        return tailer

    yield make
    for tailer in started:
        tailer.stop()


def compacted_topic(topic_factory: Callable[..., str], name: str | None = None) -> str:
    return topic_factory(name=name, partitions=3, config={"cleanup.policy": "compact"})


def eventually(check: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def serves(table: RoutingTable, bot_id: str, stage: str, version: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return table.resolve(bot_id, stage).model_version == version
        except QueryFailed:
            return False

    return check


def test_catches_up_on_existing_records_and_skips_invalid_ones(
    topic_factory: Callable[..., str],
    deployer_factory: Callable[[str], Any],
    producer_factory: Callable[..., Producer],
    tailer_factory: TailerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = compacted_topic(topic_factory)
    deployer = deployer_factory(topic)
    bots = [f"bot-{i}" for i in range(6)]
    for bot in bots:
        deployer.deploy(Route(bot, "real", "v1", SHA_1))
    deployer.deploy(Route("bot-0", "real", "v2", SHA_2))
    deployer.deploy(Route("bot-1", "beta", "v3", SHA_3))
    raw = producer_factory(partitioner="murmur2_random")
    raw.produce(topic, key=b"broken", value=b"{not json")
    raw.produce(topic, key=b"bot-5", value=None)  # retired
    assert raw.flush(10) == 0

    table = RoutingTable()
    with caplog.at_level(logging.WARNING, logger="fleetserve.kafka.tailer"):
        tailer = tailer_factory(topic, table)
        assert tailer.wait_caught_up(20)

    assert tailer.caught_up
    assert tailer.healthy
    assert table.bots() == bots[:5]
    assert table.resolve("bot-0", "real") == Route("bot-0", "real", "v2", SHA_2)
    assert table.resolve("bot-1", "beta") == Route("bot-1", "beta", "v3", SHA_3)
    with pytest.raises(QueryFailed) as retired:
        table.resolve("bot-5", "real")
    assert retired.value.reason == "unknown_bot"
    skipped = [r.getMessage() for r in caplog.records if "invalid deployment" in r.getMessage()]
    assert len(skipped) == 1
    assert re.search(rf"{re.escape(topic)}\[\d\]@\d+", skipped[0]), skipped


def test_live_deploy_and_rollback_reach_the_table_and_listeners(
    topic_factory: Callable[..., str],
    deployer_factory: Callable[[str], Any],
    tailer_factory: TailerFactory,
) -> None:
    topic = compacted_topic(topic_factory)
    deployer = deployer_factory(topic)
    v1, v2 = Route("bank", "real", "v1", SHA_1), Route("bank", "real", "v2", SHA_2)
    deployer.deploy(v1)
    table = RoutingTable()
    changes: list[RouteChange] = []
    lock = threading.Lock()

    def record(change: RouteChange) -> None:
        with lock:
            changes.append(change)

    tailer = tailer_factory(topic, table, on_change=record)
    assert tailer.wait_caught_up(20)
    assert table.resolve("bank", "real") == v1

    deployer.deploy(v2)
    assert eventually(serves(table, "bank", "real", "v2"))
    deployer.rollback("bank", "real")
    assert eventually(serves(table, "bank", "real", "v1"))

    with lock:
        assert changes == [
            RouteChange("bank", "real", None, v1),
            RouteChange("bank", "real", v1, v2),
            RouteChange("bank", "real", v2, v1),
        ]


def test_a_failing_listener_does_not_stop_routing(
    topic_factory: Callable[..., str],
    deployer_factory: Callable[[str], Any],
    tailer_factory: TailerFactory,
) -> None:
    topic = compacted_topic(topic_factory)
    deployer = deployer_factory(topic)

    def broken(change: RouteChange) -> None:
        raise RuntimeError(f"listener bug on {change.bot_id}")

    table = RoutingTable()
    tailer = tailer_factory(topic, table, on_change=broken)
    deployer.deploy(Route("bank", "real", "v1", SHA_1))
    assert eventually(serves(table, "bank", "real", "v1"))
    deployer.deploy(Route("bank", "real", "v2", SHA_2))
    assert eventually(serves(table, "bank", "real", "v2"))
    assert tailer.healthy


def test_waits_for_a_missing_topic_then_catches_up(
    topic_factory: Callable[..., str],
    deployer_factory: Callable[[str], Any],
    tailer_factory: TailerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"late-deployments-{time.monotonic_ns()}"
    table = RoutingTable()
    with caplog.at_level(logging.WARNING, logger="fleetserve.kafka.tailer"):
        tailer = tailer_factory(name, table, idle_s=0.2)
        assert not tailer.wait_caught_up(1.0)
    assert tailer.healthy
    assert not tailer.caught_up
    assert any("does not exist" in r.getMessage() for r in caplog.records)

    compacted_topic(topic_factory, name)
    deployer_factory(name).deploy(Route("bank", "dev", "v1", SHA_1))
    assert tailer.wait_caught_up(20)
    assert eventually(serves(table, "bank", "dev", "v1"))


def test_stop_is_clean_and_later_records_are_not_applied(
    topic_factory: Callable[..., str],
    deployer_factory: Callable[[str], Any],
    kafka_settings: KafkaSettings,
) -> None:
    topic = compacted_topic(topic_factory)
    deployer = deployer_factory(topic)
    deployer.deploy(Route("bank", "real", "v1", SHA_1))
    table = RoutingTable()
    tailer = DeploymentTailer(kafka_settings, topic, table)
    assert not tailer.healthy  # nothing runs before start()
    tailer.start()
    assert tailer.wait_caught_up(20)
    threads_before = {t.name for t in threading.enumerate()}
    assert any(name.startswith("deployments-tailer") for name in threads_before)

    tailer.stop()

    assert not tailer.healthy
    assert not any(t.name == f"deployments-tailer[{topic}]" for t in threading.enumerate())
    tailer.stop()  # a second stop is harmless
    with pytest.raises(RuntimeError):
        tailer.start()
    deployer.deploy(Route("bank", "real", "v2", SHA_2))
    time.sleep(0.5)
    assert table.resolve("bank", "real").model_version == "v1"


def test_an_unexpected_error_makes_the_tailer_unhealthy(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: Any) -> dict[int, int]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(scan, "assign_from_beginning", explode)
    tailer = DeploymentTailer(kafka_settings, "whatever", RoutingTable())
    tailer.start()
    try:
        assert not tailer.wait_caught_up(5)
        assert eventually(lambda: not tailer.healthy, 5)
    finally:
        tailer.stop()


@pytest.mark.parametrize(
    ("exc", "fatal"),
    [
        (KafkaException(KafkaError(KafkaError._FATAL)), True),
        (KafkaException(KafkaError(KafkaError._TRANSPORT)), False),  # the client reconnects
        (KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)), False),
        (KafkaException(KafkaError(KafkaError._FENCED, fatal=True)), True),
        (KafkaUnavailable("topic missing"), False),
        (ContractError("schema_violation", "one bad record"), False),
        (RuntimeError("a bug"), True),
    ],
)
def test_only_fatal_errors_stop_the_tailer(exc: BaseException, fatal: bool) -> None:
    assert tailer_module.is_fatal(exc) is fatal


def test_catch_up_needs_the_watermarks_and_an_idle_gap() -> None:
    """The rule the tailer shares with read_deployments (pure; times are passed in)."""
    catch_up = CatchUp({0: 2, 1: 0, 2: 1}, idle_s=0.5, now=100.0)
    assert not catch_up.done(200.0)  # partitions 0 and 2 not read yet
    catch_up.observe(0, 1, now=100.1)
    catch_up.observe(2, 0, now=100.2)
    assert catch_up.reached_ends()
    assert not catch_up.done(100.6)  # Tansu may under-report: wait for quiet too
    assert catch_up.done(100.8)
    catch_up.observe(1, 5, now=101.0)  # past a watermark is fine, and restarts the gap
    assert not catch_up.done(101.2)
    assert catch_up.done(101.5)
