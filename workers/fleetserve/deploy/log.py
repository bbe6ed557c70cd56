"""Read and append the compacted deployments topic (key = bot id, value = deployment v1)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import closing
from typing import Any

from confluent_kafka import KafkaError, Message

from fleetserve.config.settings import KafkaSettings
from fleetserve.contracts.codec import decode, encode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.records import InboundRecord
from fleetserve.errors import ContractError, KafkaUnavailable
from fleetserve.kafka import devbroker
from fleetserve.kafka.clients import producer
from fleetserve.kafka.scan import read_to_end

logger = logging.getLogger(__name__)

# Control-plane writes must survive a broker loss and must not be duplicated by retries.
PUBLISH_CONFIG: Mapping[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    # Java clients' partitioner, so producers in any language agree on a key's partition.
    "partitioner": "murmur2_random",
}


def publish_record(
    kafka: KafkaSettings, topic: str, record: Mapping[str, Any], timeout_s: float = 15.0
) -> None:
    """Append one record and wait until the cluster acknowledged it."""
    publish_records(kafka, topic, [record], timeout_s)


def publish_records(
    kafka: KafkaSettings, topic: str, records: Sequence[Mapping[str, Any]], timeout_s: float = 15.0
) -> None:
    """Append records with one producer and wait until the cluster acknowledged them all."""
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    client = producer(kafka, PUBLISH_CONFIG)
    for record in records:
        client.produce(
            topic,
            key=record["bot_id"].encode(),
            value=encode(MessageKind.DEPLOYMENT, record),
            on_delivery=on_delivery,
        )
    pending = client.flush(timeout_s)
    if failures or pending:
        reason = failures[0].str() if failures else f"not acknowledged within {timeout_s:g}s"
        bots = ", ".join(r["bot_id"] for r in records[:5])
        raise KafkaUnavailable(f"publishing the deployments of {bots} to {topic} failed: {reason}")


def read_deployments(
    kafka: KafkaSettings, topic: str, timeout_s: float = 15.0
) -> dict[str, dict[str, Any]]:
    """The latest record per bot: the whole topic, read from the beginning to its end."""
    table: dict[str, dict[str, Any]] = {}
    records = read_to_end(
        kafka, [topic], timeout_s=timeout_s, settle_s=devbroker.COMPACTED_ENDS_UNDER_REPORT
    )
    with closing(records):
        for record in records:
            _apply(table, record)
    return table


def _apply(table: dict[str, dict[str, Any]], record: InboundRecord) -> None:
    key = (record.key or b"").decode("utf-8", errors="replace")
    value = record.value
    if value is None:
        table.pop(key, None)  # a tombstone retires the bot
        return
    try:
        table[key] = decode(MessageKind.DEPLOYMENT, value)
    except ContractError as exc:
        logger.warning(
            "skipping an invalid deployment record for %s at %s[%s]@%s: %s",
            key,
            record.topic,
            record.partition,
            record.offset,
            exc,
        )
