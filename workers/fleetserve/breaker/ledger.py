"""The group's crash evidence in Kafka: tailed by every worker, written by the one that knows.

The crashes topic is compacted and keyed by (group, topic, partition): the latest record
is that partition's unresolved evidence, and a tombstone clears it once the group has
committed past every event. It is tiny and quiet: records are written only when a worker
restarts after a crash and when such evidence is resolved, never per pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

import orjson
from confluent_kafka import KafkaError, Message, Producer

from fleetserve.breaker.evidence import (
    CrashEvent,
    Evidence,
    decode_evidence,
    encode_evidence,
    ledger_key,
)
from fleetserve.breaker.inflight import InflightPass
from fleetserve.config.settings import KafkaSettings
from fleetserve.core.records import Partition
from fleetserve.errors import ContractError, KafkaUnavailable
from fleetserve.kafka.clients import producer as new_producer
from fleetserve.kafka.tailer import TopicTailer

logger = logging.getLogger(__name__)

PUBLISH_CONFIG: Mapping[str, object] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 0,
    "partitioner": "murmur2_random",
}
FLUSH_TIMEOUT_S = 15.0


class CrashLedger:
    """Evidence per partition of one consumer group, kept live from the crashes topic."""

    def __init__(self, kafka: KafkaSettings, topic: str, group: str) -> None:
        self.topic = topic
        self.group = group
        self._kafka = kafka
        self._lock = threading.Lock()
        self._table: dict[Partition, Evidence] = {}
        self._tailer = TopicTailer(kafka, topic, self._apply, name="crashes")
        self._producer: Producer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._producer = new_producer(self._kafka, dict(PUBLISH_CONFIG))
        self._tailer.start()

    def wait_caught_up(self, timeout_s: float) -> bool:
        return self._tailer.wait_caught_up(timeout_s)

    @property
    def caught_up(self) -> bool:
        return self._tailer.caught_up

    @property
    def healthy(self) -> bool:
        return self._tailer.healthy

    def stop(self) -> None:
        self._tailer.stop()
        if self._producer is not None:
            self._producer.flush(FLUSH_TIMEOUT_S)

    # -- reading -----------------------------------------------------------------------------

    def evidence(self, where: Partition) -> Evidence | None:
        with self._lock:
            return self._table.get(where)

    def any_evidence(self) -> bool:
        return bool(self._table)

    # -- writing -----------------------------------------------------------------------------

    def report(self, dead: InflightPass, worker_id: str) -> int:
        """Publish the pass a dead incarnation of this worker was in; waits for the ack.

        Returns the number of partitions it touched. Call only once caught up, so the new
        events join what the group already knows instead of replacing it.
        """
        for span in dead.spans:
            event = CrashEvent(dead.event_id, span.first, span.last, worker_id, dead.at_ms)
            where = (span.topic, span.partition)
            known = self.evidence(where) or Evidence(self.group, span.topic, span.partition, ())
            merged = known.with_events([event])
            self._send(where, encode_evidence(merged))
            with self._lock:
                self._table[where] = merged
            logger.warning(
                "a previous run of worker %s died processing %s[%d]@%d..%d; those offsets "
                "now count that crash",
                worker_id,
                span.topic,
                span.partition,
                span.first,
                span.last,
            )
        self._flush()
        return len(dead.spans)

    def resolve(self, next_offsets: Mapping[Partition, int]) -> None:
        """Clear the evidence of partitions the group has now committed past."""
        if not self._table:
            return
        with self._lock:
            done = [
                where
                for where, next_offset in next_offsets.items()
                if where in self._table and self._table[where].resolved_by(next_offset)
            ]
            for where in done:
                del self._table[where]
        for where in done:
            logger.info("crash evidence of %s[%d] resolved", *where)
            self._send(where, None)

    def _send(self, where: Partition, value: bytes | None) -> None:
        assert self._producer is not None, "start() first"
        self._producer.produce(
            self.topic, key=ledger_key(self.group, *where), value=value, on_delivery=_on_delivery
        )
        self._producer.poll(0)

    def _flush(self) -> None:
        assert self._producer is not None
        if self._producer.flush(FLUSH_TIMEOUT_S):
            raise KafkaUnavailable(f"crash evidence not acknowledged by {self.topic}")

    def _apply(self, message: Message) -> None:
        try:
            group, topic, partition = _key(message.key())
        except (ValueError, TypeError) as exc:
            raise ContractError("schema_violation", f"not a crash-ledger key: {exc}") from exc
        if group != self.group:
            return
        value = message.value()
        evidence = None if value is None else decode_evidence(value)
        with self._lock:
            if evidence is None:
                self._table.pop((topic, partition), None)
            else:
                self._table[(topic, partition)] = evidence


def _key(raw: bytes | None) -> tuple[str, str, int]:
    group, topic, partition = orjson.loads(raw or b"null")
    return str(group), str(topic), int(partition)


def _on_delivery(error: KafkaError | None, message: Message) -> None:
    if error is not None:
        logger.warning("crash ledger write to %s failed: %s", message.topic(), error.str())
