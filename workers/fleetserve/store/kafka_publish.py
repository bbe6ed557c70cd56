"""Publish snapshots to the models topic, then their index entries; idempotent.

Order is what makes a snapshot trustworthy: every record of a snapshot is acknowledged
(``acks=all``: two copies in production) before its index entry is written, and the
index entry before any deployment names it. A snapshot whose key the index already holds
with the same sha256 is not sent again. Chunks of one snapshot go to the partition its
first record was given by the key (murmur2, as Java clients do), so a re-publish of the
same snapshot lands on the same partition and compaction keeps one copy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from fleetserve.config.settings import KafkaSettings
from fleetserve.core.records import Coordinates
from fleetserve.errors import ArtifactCorrupt, KafkaUnavailable
from fleetserve.kafka.clients import producer
from fleetserve.store.base import snapshot_key
from fleetserve.store.frame import ChunkRecord, chunk_key, split_snapshot
from fleetserve.store.index import IndexEntry

logger = logging.getLogger(__name__)

PUBLISH_CONFIG: Mapping[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "partitioner": "murmur2_random",
    "linger.ms": 20,
    # A fetch returns whole batches: small batches keep a load from reading its
    # neighbours' bytes too (one 130 KB snapshot per fetch, not eight).
    "batch.size": 256 * 1024,
}


@dataclass(frozen=True)
class Outgoing:
    """One snapshot to publish: the manifest as the store holds it, and the model."""

    bot_id: str
    version: str
    sha256: str
    manifest: bytes
    model: bytes
    created_at: str | None = None
    size: int = -1  # the model's size in bytes; taken from ``model`` when not given

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.model))

    @property
    def key(self) -> str:
        return snapshot_key(self.bot_id, self.version)


@dataclass(frozen=True)
class Published:
    entry: IndexEntry
    sent: bool  # False: the models topic held it already


class _Deliveries:
    """Delivery reports of one publish run: first-record coordinates and failures."""

    def __init__(self) -> None:
        self.first: dict[str, Coordinates] = {}
        self.failures: list[str] = []

    def callback(self, key: str, first: bool) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self.failures.append(f"{key}: {error.str()}")
            elif first:
                self.first[key] = (
                    message.topic() or "",
                    message.partition() or 0,
                    message.offset() or 0,
                )

        return on_delivery


class SnapshotPublisher:
    def __init__(
        self,
        kafka: KafkaSettings,
        models_topic: str,
        index_topic: str,
        *,
        record_limit: int,
        timeout_s: float = 60.0,
    ) -> None:
        self.kafka = kafka
        self.models_topic = models_topic
        self.index_topic = index_topic
        self.record_limit = record_limit
        self.timeout_s = timeout_s

    def publish(
        self, items: Iterable[Outgoing], known: Callable[[str], IndexEntry | None]
    ) -> list[Published]:
        """Every item in the topic, sent only when ``known`` does not hold it already.

        The results follow the items' order. Items are read one at a time, so a generator
        of 10,000 snapshots never holds more than the producer's queue in memory.
        """
        config = {**PUBLISH_CONFIG, "message.max.bytes": self.record_limit}
        client = producer(self.kafka, config)
        deliveries = _Deliveries()
        results: list[Published | tuple[Outgoing, int]] = []
        for item in items:
            existing = known(item.key)
            if existing is not None:
                results.append(Published(_same_bytes(existing, item), sent=False))
                continue
            chunks = split_snapshot(
                item.bot_id, item.version, item.manifest, item.model, item.sha256,
                self.record_limit,
            )  # fmt: skip
            self._send(client, chunks, deliveries)
            # Only what the index entry needs is kept, not the model bytes.
            results.append((replace(item, manifest=b"", model=b""), len(chunks)))
        self._flush(client, deliveries, "snapshots")
        done = [
            r if isinstance(r, Published) else Published(self._entry(*r, deliveries), sent=True)
            for r in results
        ]
        for result in done:
            if result.sent:
                entry = result.entry
                _produce(client, self.index_topic, entry.key, entry.encode(), (), None, deliveries)
        self._flush(client, deliveries, "index entries")
        return done

    def tombstone(self, entries: Iterable[IndexEntry]) -> int:
        """Tombstones for every record of each snapshot, then for its index entry."""
        client = producer(self.kafka, PUBLISH_CONFIG)
        deliveries = _Deliveries()
        gone = list(entries)
        for entry in gone:
            topic, partition, _ = entry.location
            for index in range(entry.chunks):
                key = chunk_key(entry.bot_id, entry.version, index)
                _produce(client, topic, key, None, (), partition, deliveries)
        self._flush(client, deliveries, "snapshot tombstones")
        for entry in gone:
            _produce(client, self.index_topic, entry.key, None, (), None, deliveries)
        self._flush(client, deliveries, "index tombstones")
        return len(gone)

    # -- internals ----------------------------------------------------------------------

    def _send(self, client: Producer, chunks: list[ChunkRecord], deliveries: _Deliveries) -> None:
        head, *rest = chunks
        key = head.key
        on_first = deliveries.callback(key, first=True)
        _produce(
            client, self.models_topic, key, head.value, head.headers, None, deliveries, on_first
        )
        if not rest:
            return
        # The rest must follow on the partition the key chose for the first record.
        self._flush(client, deliveries, f"the first chunk of {key}")
        _, partition, _ = deliveries.first[key]
        for chunk in rest:
            _produce(
                client, self.models_topic, chunk.key, chunk.value, chunk.headers, partition,
                deliveries,
            )  # fmt: skip

    def _entry(self, item: Outgoing, chunks: int, deliveries: _Deliveries) -> IndexEntry:
        return IndexEntry(
            bot_id=item.bot_id,
            version=item.version,
            sha256=item.sha256,
            size_bytes=item.size,
            chunks=chunks,
            location=deliveries.first[item.key],
            published_at_ms=int(time.time() * 1000),
            created_at=item.created_at,
        )

    def _flush(self, client: Producer, deliveries: _Deliveries, what: str) -> None:
        pending = client.flush(self.timeout_s)
        if deliveries.failures or pending:
            first = deliveries.failures[0] if deliveries.failures else f"{pending} not acknowledged"
            raise KafkaUnavailable(
                f"publishing {what} to {self.models_topic} failed "
                f"({len(deliveries.failures)} refused): {first}"
            )


def _produce(
    client: Producer,
    topic: str,
    key: str,
    value: bytes | None,
    headers: tuple[tuple[str, bytes], ...],
    partition: int | None,
    deliveries: _Deliveries,
    on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
) -> None:
    callback = on_delivery or deliveries.callback(key, first=False)
    extra: dict[str, Any] = {} if partition is None else {"partition": partition}
    while True:
        try:
            client.produce(
                topic, key=key.encode(), value=value, headers=list(headers),
                on_delivery=callback, **extra,
            )  # fmt: skip
            client.poll(0)
            return
        except BufferError:  # the local queue is full: let deliveries drain it
            client.poll(0.1)


def _same_bytes(existing: IndexEntry, item: Outgoing) -> IndexEntry:
    if existing.sha256 != item.sha256:
        raise ArtifactCorrupt(
            f"the models topic holds sha256 {existing.sha256} under {item.key}, "
            f"the snapshot to publish has {item.sha256}; refusing to overwrite"
        )
    return existing
