"""The model index: one small record per published snapshot, on its own compacted topic.

The models topic holds about 130 KB per snapshot, so reading it to learn what it holds
would mean reading all of it (1.3 GB for 10,000 bots). The index topic holds, per
``<bot>/<version>`` key, where the snapshot starts (topic, partition, offset), its
sha256, size, chunk count and creation time: about 300 bytes. A publisher writes an
entry only after every record of the snapshot was acknowledged, so an entry means a whole
snapshot; ``fleetserve gc`` tombstones both. Readers:

* ``deploy`` / ``publish``: is this snapshot there already (then nothing is sent)?
* ``gc``: which versions exist, and how old are they?
* a worker serving a deployment record without a location (older records): where is it?
  It tails the index only when it first needs it (:class:`LiveIndex`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Message

from fleetserve.config.settings import KafkaSettings
from fleetserve.core.records import Coordinates
from fleetserve.errors import ContractError, KafkaUnavailable
from fleetserve.kafka.tailer import TopicTailer
from fleetserve.store.base import snapshot_key

INDEX_VERSION = 1
_FIELDS = {
    "index_version": int,
    "bot_id": str,
    "model_version": str,
    "sha256": str,
    "size_bytes": int,
    "chunks": int,
    "topic": str,
    "partition": int,
    "offset": int,
    "published_at_ms": int,
}


@dataclass(frozen=True)
class IndexEntry:
    bot_id: str
    version: str
    sha256: str
    size_bytes: int
    chunks: int
    location: Coordinates
    published_at_ms: int
    created_at: str | None = None  # the manifest's creation time (ISO-8601), for gc's order

    @property
    def key(self) -> str:
        return snapshot_key(self.bot_id, self.version)

    def encode(self) -> bytes:
        topic, partition, offset = self.location
        return orjson.dumps(
            {
                "index_version": INDEX_VERSION,
                "bot_id": self.bot_id,
                "model_version": self.version,
                "sha256": self.sha256,
                "size_bytes": self.size_bytes,
                "chunks": self.chunks,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "published_at_ms": self.published_at_ms,
                "created_at": self.created_at,
            }
        )

    @classmethod
    def decode(cls, key: str, value: bytes) -> IndexEntry:
        """An entry, or ContractError naming what is wrong (the record is then skipped)."""
        try:
            body = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ContractError("invalid_json", f"index entry {key}: {exc}") from None
        if not isinstance(body, dict):
            raise ContractError("schema_violation", f"index entry {key} is not an object")
        _check_fields(key, body)
        entry = cls(
            bot_id=body["bot_id"],
            version=body["model_version"],
            sha256=body["sha256"],
            size_bytes=body["size_bytes"],
            chunks=body["chunks"],
            location=(body["topic"], body["partition"], body["offset"]),
            published_at_ms=body["published_at_ms"],
            created_at=body.get("created_at") if isinstance(body.get("created_at"), str) else None,
        )
        if entry.key != key:
            raise ContractError("schema_violation", f"index entry for {entry.key} under {key}")
        return entry


def _check_fields(key: str, body: Mapping[str, Any]) -> None:
    for name, kind in _FIELDS.items():
        value = body.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ContractError(
                "schema_violation", f"index entry {key}: {name} is not a {kind.__name__}"
            )
    if body["index_version"] != INDEX_VERSION:
        raise ContractError("unsupported_version", f"index entry {key}: a newer index version")


class ModelIndex:
    """The latest entry per key; thread-safe."""

    def __init__(self) -> None:
        self._entries: dict[str, IndexEntry] = {}
        self._lock = threading.Lock()

    def apply(self, key: str, entry: IndexEntry | None) -> None:
        with self._lock:
            if entry is None:
                self._entries.pop(key, None)
            else:
                self._entries[key] = entry

    def get(self, key: str) -> IndexEntry | None:
        return self._entries.get(key)

    def entries(self) -> list[IndexEntry]:
        with self._lock:
            return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


class IndexTailer(TopicTailer):
    """Keeps a :class:`ModelIndex` live from the index topic (from the beginning)."""

    def __init__(self, kafka: KafkaSettings, topic: str, index: ModelIndex) -> None:
        super().__init__(kafka, topic, self._apply, name="model-index")
        self.index = index

    def _apply(self, message: Message) -> None:
        key = (message.key() or b"").decode("utf-8", errors="replace")
        if not key:
            raise ContractError("schema_violation", "index record has no key")
        value = message.value()
        self.index.apply(key, None if value is None else IndexEntry.decode(key, value))


class LiveIndex:
    """The index, read on first use and then followed; shared by every thread of a process."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.index = ModelIndex()
        self._tailer: IndexTailer | None = None
        self._lock = threading.Lock()

    def start(self) -> IndexTailer:
        """Start reading the index (again, if its tailer died); returns at once."""
        with self._lock:
            if self._tailer is None or not self._tailer.healthy:
                if self._tailer is not None:
                    self._tailer.stop()
                self._tailer = IndexTailer(self.kafka, self.topic, self.index)
                self._tailer.start()
            return self._tailer

    def ready(self, timeout_s: float) -> ModelIndex:
        """The index once it caught up with the topic; KafkaUnavailable if not in time."""
        tailer = self.start()
        if not tailer.wait_caught_up(timeout_s):
            raise KafkaUnavailable(
                f"the model index {self.topic} was not read within {timeout_s:g}s"
            )
        return self.index

    def note(self, entry: IndexEntry) -> None:
        """This process just published ``entry``: known before the tailer reads it back."""
        self.index.apply(entry.key, entry)

    def close(self) -> None:
        with self._lock:
            tailer, self._tailer = self._tailer, None
        if tailer is not None:
            tailer.stop()
