"""The deployments topic through the real broker: append, read back the latest per bot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer

from fleetserve.config.settings import KafkaSettings
from fleetserve.deploy import records
from fleetserve.deploy.log import publish_record, read_deployments
from fleetserve.errors import KafkaUnavailable

pytestmark = pytest.mark.kafka

SHA_A = "a" * 64
SHA_B = "b" * 64


def deployment(
    bot_id: str,
    version: str,
    sha256: str = SHA_A,
    current: dict[str, Any] | None = None,
    stage: str = "real",
) -> dict[str, Any]:
    return records.deploy(
        current,
        bot_id=bot_id,
        stage=stage,
        model_version=version,
        sha256=sha256,
        actor="ops",
        now_ms=1_800_000_000_000,
    )


def compacted_topic(topic_factory: Callable[..., str]) -> str:
    return topic_factory(partitions=3, config={"cleanup.policy": "compact"})


def test_latest_record_per_bot_wins(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    topic = compacted_topic(topic_factory)
    first = deployment("bank", "v1")
    second = deployment("bank", "v2", SHA_B, current=first)
    other = deployment("travel", "v9", stage="dev")
    for each in (first, second, other):
        publish_record(kafka_settings, topic, each)
    table = read_deployments(kafka_settings, topic, timeout_s=20)
    assert table == {"bank": second, "travel": other}


def test_tombstones_retire_and_bad_records_are_skipped(
    kafka_settings: KafkaSettings,
    topic_factory: Callable[..., str],
    producer_factory: Callable[..., Producer],
) -> None:
    topic = compacted_topic(topic_factory)
    keep = deployment("keep", "v1")
    gone = deployment("gone", "v1")
    publish_record(kafka_settings, topic, keep)
    publish_record(kafka_settings, topic, gone)
    raw = producer_factory(partitioner="murmur2_random")
    raw.produce(topic, key=b"gone", value=None)
    raw.produce(topic, key=b"broken", value=b"{not json")
    assert raw.flush(10) == 0
    assert read_deployments(kafka_settings, topic, timeout_s=20) == {"keep": keep}


def test_empty_topic_reads_as_empty(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    assert read_deployments(kafka_settings, compacted_topic(topic_factory), timeout_s=20) == {}


def test_missing_topic_says_how_to_fix(kafka_settings: KafkaSettings) -> None:
    with pytest.raises(KafkaUnavailable, match="fleetserve topics apply"):
        read_deployments(kafka_settings, "no-such-deployments-topic", timeout_s=5)
