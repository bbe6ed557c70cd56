"""The models topic as an artifact store: a worker on any machine needs only the bootstrap.

Snapshots live on the compacted models topic (``store/frame.py`` for the layout), found
by where a deployment says they start, or else by the model index (``store/index.py``).
A worker keeps what it fetched in a disk cache (``store/disk_cache.py``), so a restart or
a second group on the same machine reads the disk, not the topic; and a topic that is
briefly unreadable only delays loads of versions neither cache holds (they time out
into the retry tier).

Builds write to a local directory; ``fleetserve publish`` and ``deploy`` copy snapshots
from there to the topic. So this store does not keep build keys.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from fleetserve.config.settings import KafkaSettings
from fleetserve.core.records import Coordinates
from fleetserve.errors import ArtifactMissing, ConfigError
from fleetserve.kafka.devbroker import MODEL_FETCH_WAIT_MS
from fleetserve.store.base import (
    Snapshot,
    SnapshotRef,
    SnapshotRequest,
    sha256_hex,
    snapshot_key,
    version_for,
)
from fleetserve.store.disk_cache import DiskCache
from fleetserve.store.index import IndexEntry, LiveIndex, ModelIndex
from fleetserve.store.kafka_fetch import SnapshotFetcher
from fleetserve.store.kafka_publish import Outgoing, Published, SnapshotPublisher

logger = logging.getLogger(__name__)

MODELS_ROLE = "models"
INDEX_ROLE = "model_index"
# Apache Kafka's default max.message.bytes, for a topic file that does not state one.
KAFKA_DEFAULT_RECORD_LIMIT = 1_048_588


class DeclaredTopics(Protocol):
    """What a resolved topic file offers (``topics.spec.TopicSet``; the store sits below it)."""

    @property
    def topics(self) -> Mapping[str, Any]: ...

    def name(self, role: str) -> str: ...


@dataclass(frozen=True)
class ModelTopics:
    models: str
    index: str
    record_limit: int
    """The models topic's ``max.message.bytes``: no record (chunk) is larger."""

    @classmethod
    def from_declared(cls, declared: DeclaredTopics) -> ModelTopics:
        missing = [r for r in (MODELS_ROLE, INDEX_ROLE) if r not in declared.topics]
        if missing:
            raise ConfigError(f"the topic file declares no {' or '.join(missing)} topic")
        configs = declared.topics[MODELS_ROLE].configs
        limit = int(configs.get("max.message.bytes", KAFKA_DEFAULT_RECORD_LIMIT))
        return cls(declared.name(MODELS_ROLE), declared.name(INDEX_ROLE), limit)


class KafkaModelStore:
    """An ArtifactStore and SnapshotReader over the models topic; no I/O until used."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: ModelTopics,
        *,
        disk_cache: DiskCache | None = None,
        fetch_timeout_s: float = 5.0,
        fetch_wait_max_ms: int = MODEL_FETCH_WAIT_MS,
        fetch_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.kafka = kafka
        self.topics = topics
        self.disk_cache = disk_cache
        self.fetch_timeout_s = fetch_timeout_s
        self._fetcher = SnapshotFetcher(
            kafka,
            record_limit=topics.record_limit,
            timeout_s=fetch_timeout_s,
            fetch_wait_max_ms=fetch_wait_max_ms,
            overrides=fetch_overrides,
        )
        self._index = LiveIndex(kafka, topics.index)
        self._publisher = SnapshotPublisher(
            kafka, topics.models, topics.index, record_limit=topics.record_limit
        )
        self._recent: tuple[str, Snapshot] | None = None
        self._recent_lock = threading.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"KafkaModelStore({self.topics.models!r})"

    # -- reading (the worker) -----------------------------------------------------------

    def read_snapshot(self, request: SnapshotRequest) -> Snapshot:
        if self.disk_cache is not None:
            cached = self.disk_cache.get(request.sha256, request.max_bytes)
            if cached is not None:
                return cached
        snapshot = self._fetcher.fetch(request, self._locate(request))
        self.fetches += 1
        if self.disk_cache is not None:
            self.disk_cache.put(request.sha256, orjson.dumps(snapshot.manifest), snapshot.model)
        return snapshot

    def _locate(self, request: SnapshotRequest) -> Coordinates:
        if request.location is not None:
            if request.location[0] == self.topics.models:
                return request.location
            logger.warning(
                "%s: the deployment names topic %s, this store reads %s; looking it up by key",
                request.key,
                request.location[0],
                self.topics.models,
            )
        entry = self.index(self.fetch_timeout_s).get(request.key)
        if entry is None:
            raise ArtifactMissing(
                f"snapshot {request.key} is not in the models topic {self.topics.models} "
                f"(its index {self.topics.index} has no entry)"
            )
        return entry.location

    def prepare(self) -> None:
        """Start reading the index now, so it is ready by the time it is needed."""
        self._index.start()

    def index(self, timeout_s: float = 15.0) -> ModelIndex:
        """The model index once read up to date; read on first use, then followed."""
        return self._index.ready(timeout_s)

    # -- publishing (deploy, publish, builds) ---------------------------------------------

    def publish(self, items: Iterable[Outgoing], timeout_s: float = 15.0) -> list[Published]:
        """Send what the index does not hold yet; every item's index entry either way."""
        index = self.index(timeout_s)
        results = self._publisher.publish(items, index.get)
        for result in results:
            if result.sent:
                self._index.note(result.entry)
        return results

    def tombstone(self, entries: Iterable[IndexEntry]) -> int:
        gone = list(entries)
        count = self._publisher.tombstone(gone)
        for entry in gone:
            self._index.index.apply(entry.key, None)
        return count

    # -- the ArtifactStore protocol --------------------------------------------------------

    def put_snapshot(
        self, bot_id: str, model_bytes: bytes, manifest: Mapping[str, Any]
    ) -> SnapshotRef:
        version = version_for(model_bytes)
        digest = sha256_hex(model_bytes)
        body = {**manifest, "bot_id": bot_id, "version": version}
        body["model"] = {**body.get("model", {}), "sha256": digest, "size_bytes": len(model_bytes)}
        item = Outgoing(
            bot_id, version, digest, orjson.dumps(body), model_bytes, body.get("created_at")
        )
        [published] = self.publish([item])
        return SnapshotRef(bot_id, version, digest, published.entry.location)

    def exists(self, bot_id: str, version: str) -> bool:
        return self.index().get(snapshot_key(bot_id, version)) is not None

    def read_manifest(self, bot_id: str, version: str) -> dict[str, Any]:
        return self._by_key(bot_id, version).manifest

    def read_model(self, bot_id: str, version: str, max_bytes: int | None = None) -> bytes:
        return self._by_key(bot_id, version, max_bytes).model

    def versions(self, bot_id: str) -> list[str]:
        """Oldest first, so ``[-1]`` is the newest."""
        mine = [e for e in self.index().entries() if e.bot_id == bot_id]
        return [e.version for e in sorted(mine, key=entry_age)]

    def bots(self) -> list[str]:
        return sorted({e.bot_id for e in self.index().entries()})

    def record_build(self, bot_id: str, build_key: str, version: str) -> None:  # noqa: ARG002
        raise ConfigError(
            "the models topic keeps no build keys: build into a directory (--store DIR), "
            "then `fleetserve publish` or `fleetserve deploy`"
        )

    def built_version(self, bot_id: str, build_key: str) -> str | None:  # noqa: ARG002
        return None  # never skips: builds do not run against this store

    def close(self) -> None:
        self._fetcher.close()
        self._index.close()

    def _by_key(self, bot_id: str, version: str, max_bytes: int | None = None) -> Snapshot:
        key = snapshot_key(bot_id, version)
        with self._recent_lock:
            recent = self._recent
        if recent is not None and recent[0] == key:
            snapshot = recent[1]
            if max_bytes is None or len(snapshot.model) <= max_bytes:
                return snapshot
        entry = self.index().get(key)
        if entry is None:
            raise ArtifactMissing(f"no snapshot {key} in the models topic {self.topics.models}")
        request = SnapshotRequest(bot_id, version, entry.sha256, entry.location, max_bytes)
        snapshot = self.read_snapshot(request)
        with self._recent_lock:
            self._recent = (key, snapshot)
        return snapshot


def entry_age(entry: IndexEntry) -> tuple[float, int]:
    """Sort key, oldest first: the manifest's creation time, then the publishing time."""
    created = entry.published_at_ms / 1000
    if entry.created_at:
        with contextlib.suppress(ValueError):
            created = dt.datetime.fromisoformat(entry.created_at).timestamp()
    return (created, entry.published_at_ms)
