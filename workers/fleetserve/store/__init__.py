"""The artifact store: immutable, content-addressed model snapshots."""

from fleetserve.store.base import ArtifactStore, SnapshotRef
from fleetserve.store.local import LocalDirectoryStore

__all__ = ["ArtifactStore", "LocalDirectoryStore", "SnapshotRef"]
