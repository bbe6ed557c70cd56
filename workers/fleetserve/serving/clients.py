"""The worker's Kafka clients, configured for the serving loop."""

from __future__ import annotations

from confluent_kafka import Consumer

from fleetserve.config.settings import Settings
from fleetserve.kafka import devbroker
from fleetserve.kafka.clients import consumer as new_consumer
from fleetserve.kafka.clients import producer as new_producer
from fleetserve.serving.commit import (
    PRODUCER_CONFIG,
    TRANSACTION_TIMEOUT_MS,
    AtLeastOnceCommitter,
    Committer,
    Rescue,
    TransactionalCommitter,
)


def serving_consumer(settings: Settings) -> Consumer:
    serving = settings.serving
    return new_consumer(
        settings.kafka,
        {
            "group.id": settings.group_id,
            "client.id": f"fleetserve-{settings.worker_id}",
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": serving.session_timeout_ms,
            "isolation.level": "read_committed",
            "enable.auto.commit": serving.delivery == "at-least-once",
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": serving.fetch_wait_max_ms or devbroker.EMPTY_FETCH_WAIT_MS,
        },
    )


def serving_committer(settings: Settings, rescue: Rescue) -> Committer:
    if settings.serving.delivery == "at-least-once":
        return AtLeastOnceCommitter(new_producer(settings.kafka, PRODUCER_CONFIG), rescue)
    transactional = {
        **PRODUCER_CONFIG,
        # Stable per worker: a restarted worker fences its crashed self's transaction.
        "transactional.id": f"fleetserve-{settings.group_id}-{settings.worker_id}",
        "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
    }
    return TransactionalCommitter(new_producer(settings.kafka, transactional), rescue)


def step_reader(settings: Settings) -> Consumer:
    """Reads a retry partition's recent history; no group offsets of its own."""
    return new_consumer(
        settings.kafka,
        {
            "group.id": f"fleetserve-steps-{settings.worker_id}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 10,
            "enable.partition.eof": True,  # the end of a retry partition's tail
        },
    )
