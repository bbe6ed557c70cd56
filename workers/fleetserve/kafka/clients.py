"""Build confluent-kafka clients from settings.

librdkafka's own log lines go to this module's logger instead of raw stderr,
so the CLI's logging configuration decides what an operator sees.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from fleetserve.config.settings import KafkaSettings
from fleetserve.kafka import devbroker

logger = logging.getLogger(__name__)

# Probes must fail fast; librdkafka's default reconnect backoff grows to 10 s.
FAST_RECONNECT: Mapping[str, str] = {
    "reconnect.backoff.ms": "50",
    "reconnect.backoff.max.ms": "500",
}


def client_config(
    kafka: KafkaSettings, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Settings' properties, then per-client overrides, plus the Python logger."""
    config: dict[str, Any] = {**kafka.client_config(), **(overrides or {})}
    config["logger"] = logger
    return config


def admin_client(kafka: KafkaSettings, overrides: Mapping[str, Any] | None = None) -> AdminClient:
    return AdminClient(client_config(kafka, overrides))


def producer(kafka: KafkaSettings, overrides: Mapping[str, Any] | None = None) -> Producer:
    return Producer(client_config(kafka, overrides))


def consumer(kafka: KafkaSettings, overrides: Mapping[str, Any] | None = None) -> Consumer:
    return Consumer(client_config(kafka, overrides))


def ends_reader(kafka: KafkaSettings) -> Consumer:
    """Asks partitions' ends only; it never joins a group or reads a record."""
    return consumer(
        kafka,
        {
            "group.id": f"fleetserve-ends-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "isolation.level": devbroker.ENDS_ISOLATION,
        },
    )
