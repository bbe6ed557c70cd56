"""Before a deployment names a snapshot, make sure it is where workers will look.

* :class:`PublishingPlacement` (``--store DIR``, the usual case): the snapshot is checked
  in the build directory (file against manifest) and published to the models topic,
  idempotently: the index already holding the key with the same sha256 sends nothing.
  A snapshot the directory does not have but the topic does (a rollback from another
  machine) is taken from the topic.
* :class:`TopicPlacement` (``--store kafka``): the snapshot must be on the models topic
  already; it is fetched and its bytes checked against the index's sha256.
* :class:`LocalPlacement`: no models topic known (a caller without one); the snapshot is
  checked in the directory and the deployment names no location.

Each returns the sha256 the deployment will carry and, when there is one, the location.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from fleetserve.core.records import Coordinates
from fleetserve.errors import ArtifactError, DeploymentRefused
from fleetserve.store.base import ArtifactStore, SnapshotRequest, sha256_hex, snapshot_key
from fleetserve.store.kafka_publish import Outgoing, Published
from fleetserve.store.kafka_store import KafkaModelStore


@dataclass(frozen=True)
class Placed:
    sha256: str
    location: Coordinates | None = None
    sent: bool = False  # the models topic received it just now


class Placement(Protocol):
    def prepare(self) -> None:
        """Start whatever reads ``place`` will need (it runs beside other reads)."""
        ...

    def place(self, bot_id: str, version: str) -> Placed: ...

    def close(self) -> None: ...


def verified_snapshot(
    store: ArtifactStore, bot_id: str, version: str
) -> tuple[dict[str, Any], bytes]:
    """Manifest and bytes, only if the snapshot exists and its file matches its manifest."""
    if not store.exists(bot_id, version):
        known = ", ".join(store.versions(bot_id)[-5:]) or "none"
        raise DeploymentRefused(f"{bot_id} has no snapshot {version} in {store!r} (known: {known})")
    try:
        return store.read_manifest(bot_id, version), store.read_model(bot_id, version)
    except ArtifactError as exc:
        raise DeploymentRefused(f"refusing to deploy {bot_id}/{version}: {exc}") from None


def build_order(store: ArtifactStore, bot_id: str) -> list[str]:
    """A bot's versions in a store, oldest build first (by the manifest's ``created_at``)."""
    return sorted(
        store.versions(bot_id),
        key=lambda version: str(store.read_manifest(bot_id, version).get("created_at", "")),
    )


def verified_sha256(store: ArtifactStore, bot_id: str, version: str) -> str:
    """The snapshot's sha256, only if it exists and its file still matches its manifest."""
    return sha256_hex(verified_snapshot(store, bot_id, version)[1])


@dataclass(frozen=True)
class LocalPlacement:
    """No models topic: the snapshot is checked in the directory, the record names no place."""

    store: ArtifactStore

    def prepare(self) -> None:
        return None

    def place(self, bot_id: str, version: str) -> Placed:
        return Placed(verified_sha256(self.store, bot_id, version))

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class TopicPlacement:
    models: KafkaModelStore

    def prepare(self) -> None:
        self.models.prepare()

    def place(self, bot_id: str, version: str) -> Placed:
        key = snapshot_key(bot_id, version)
        entry = self.models.index().get(key)
        if entry is None:
            raise DeploymentRefused(
                f"{key} is not in the models topic {self.models.topics.models}; publish it "
                "first (`fleetserve --store DIR publish`)"
            )
        request = SnapshotRequest(bot_id, version, entry.sha256, entry.location)
        try:
            self.models.read_snapshot(request)
        except ArtifactError as exc:
            raise DeploymentRefused(f"refusing to deploy {key}: {exc}") from None
        return Placed(entry.sha256, entry.location)

    def close(self) -> None:
        self.models.close()


@dataclass(frozen=True)
class PublishingPlacement:
    source: ArtifactStore
    models: KafkaModelStore

    def prepare(self) -> None:
        self.models.prepare()

    def place(self, bot_id: str, version: str) -> Placed:
        if not self.source.exists(bot_id, version) and self._on_topic(bot_id, version):
            return TopicPlacement(self.models).place(bot_id, version)
        [placed] = self.place_many([(bot_id, version)])
        return placed

    def place_many(self, snapshots: Iterable[tuple[str, str]]) -> list[Placed]:
        """Publish each (bot, version) from the directory; one producer for all of them."""
        try:
            published = self.models.publish(self._outgoing(snapshots))
        except ArtifactError as exc:
            raise DeploymentRefused(f"refusing to publish: {exc}") from None
        return [_placed(p) for p in published]

    def close(self) -> None:
        self.models.close()

    def _on_topic(self, bot_id: str, version: str) -> bool:
        return self.models.index().get(snapshot_key(bot_id, version)) is not None

    def _outgoing(self, snapshots: Iterable[tuple[str, str]]) -> Iterator[Outgoing]:
        for bot_id, version in snapshots:
            manifest, model = verified_snapshot(self.source, bot_id, version)
            yield Outgoing(
                bot_id,
                version,
                sha256_hex(model),
                orjson.dumps(manifest),
                model,
                manifest.get("created_at"),
            )


def _placed(published: Published) -> Placed:
    return Placed(published.entry.sha256, published.entry.location, sent=published.sent)
