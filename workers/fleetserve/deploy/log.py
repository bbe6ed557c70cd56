"""Read and append the compacted deployments topic (key = bot id, value = deployment v1)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message

from fleetserve.config import KafkaSettings
from fleetserve.contracts import MessageKind, decode, encode
from fleetserve.errors import ContractError, KafkaUnavailable
from fleetserve.kafka.clients import consumer, producer
from fleetserve.kafka.scan import CatchUp, assign_from_beginning

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
    kafka: KafkaSettings, topic: str, timeout_s: float = 15.0, idle_s: float = 0.5
) -> dict[str, dict[str, Any]]:
    """The latest record per bot: the whole topic, read from the beginning.

    Reading stops once caught up (see :class:`CatchUp`): past the high watermarks
    *and* nothing new for ``idle_s``.
    """
    client = consumer(
        kafka,
        {
            "group.id": f"fleetserve-deploy-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        },
    )
    try:
        ends = assign_from_beginning(client, topic, timeout_s)
        return _drain(client, CatchUp(ends, idle_s), timeout_s)
    finally:
        client.close()


def _drain(client: Consumer, catch_up: CatchUp, timeout_s: float) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = client.poll(0.1)
        if message is None or message.error() is not None:
            if catch_up.done(time.monotonic()):
                return table
            continue
        catch_up.observe(message.partition() or 0, message.offset() or 0, time.monotonic())
        _apply(table, message)
    raise KafkaUnavailable(f"reading the deployments topic did not finish within {timeout_s:g}s")


def _apply(table: dict[str, dict[str, Any]], message: Message) -> None:
    key = (message.key() or b"").decode("utf-8", errors="replace")
    value = message.value()
    if value is None:
        table.pop(key, None)  # a tombstone retires the bot
        return
    try:
        table[key] = decode(MessageKind.DEPLOYMENT, value)
    except ContractError as exc:
        logger.warning(
            "skipping an invalid deployment record for %s at %s[%s]@%s: %s",
            key,
            message.topic(),
            message.partition(),
            message.offset(),
            exc,
        )
