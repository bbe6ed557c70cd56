"""Which artifact store a command uses: ``--store DIR`` or ``--store kafka``."""

from __future__ import annotations

from pathlib import Path

from fleetserve.config.settings import Settings
from fleetserve.store.base import ArtifactStore
from fleetserve.store.disk_cache import DiskCache
from fleetserve.store.kafka_store import DeclaredTopics, KafkaModelStore, ModelTopics
from fleetserve.store.local import LocalDirectoryStore


def model_store(settings: Settings, declared: DeclaredTopics) -> KafkaModelStore:
    """The models topic as a store, without a disk cache (commands other than the worker)."""
    return KafkaModelStore(settings.kafka, ModelTopics.from_declared(declared))


def serving_store(settings: Settings, declared: DeclaredTopics) -> ArtifactStore:
    """A worker's store: the directory, or the models topic behind the worker's disk cache."""
    if not settings.store_kafka:
        return LocalDirectoryStore(settings.store_dir)
    serving = settings.serving
    return KafkaModelStore(
        settings.kafka,
        ModelTopics.from_declared(declared),
        disk_cache=DiskCache(Path(serving.disk_cache_path), serving.disk_cache_bytes),
        fetch_timeout_s=serving.model_fetch_timeout_ms / 1000,
    )


def close_store(store: object) -> None:
    """Release a store's clients, if it has any (the directory store has none)."""
    if isinstance(store, KafkaModelStore):
        store.close()
