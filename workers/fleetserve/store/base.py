"""What every artifact store offers: the local directory is one, the models topic another.

A snapshot is ``<bot>/<version>/`` holding ``model.onnx`` and ``manifest.json``. The version
is derived from the model bytes, so the same model always lands at the same address and a
published snapshot never changes.

A store that can read a snapshot in one go, given what the deployment says about it (its
sha256 and, for the models topic, where it lies), also offers :class:`SnapshotReader`;
the worker's loader prefers that path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from fleetserve.core.records import Coordinates

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
VERSION_HEX_CHARS = 16


@dataclass(frozen=True)
class SnapshotRef:
    bot_id: str
    version: str
    sha256: str
    location: Coordinates | None = None
    """Where the models topic holds it (topic, partition, offset of its first record)."""


@dataclass(frozen=True)
class SnapshotRequest:
    """One snapshot as a deployment names it: the bytes must hash to ``sha256``."""

    bot_id: str
    version: str
    sha256: str
    location: Coordinates | None = None
    max_bytes: int | None = None

    @property
    def key(self) -> str:
        return snapshot_key(self.bot_id, self.version)


@dataclass(frozen=True)
class Snapshot:
    """A manifest and the model bytes it describes, already checked against each other."""

    manifest: dict[str, Any]
    model: bytes


def snapshot_key(bot_id: str, version: str) -> str:
    """A snapshot's name in every store: ``<bot>/<version>``."""
    return f"{bot_id}/{version}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def version_for(model_bytes: bytes) -> str:
    """Content address of a model: a prefix of its sha256 (the manifest keeps the whole)."""
    return sha256_hex(model_bytes)[:VERSION_HEX_CHARS]


class ArtifactStore(Protocol):
    def put_snapshot(
        self, bot_id: str, model_bytes: bytes, manifest: Mapping[str, Any]
    ) -> SnapshotRef: ...

    def exists(self, bot_id: str, version: str) -> bool: ...

    def read_manifest(self, bot_id: str, version: str) -> dict[str, Any]: ...

    def read_model(self, bot_id: str, version: str, max_bytes: int | None = None) -> bytes:
        """The model bytes, verified against the manifest's sha256.

        With ``max_bytes``, a larger model raises ArtifactTooLarge without being read whole.
        """
        ...

    def versions(self, bot_id: str) -> list[str]: ...

    def bots(self) -> list[str]: ...

    def record_build(self, bot_id: str, build_key: str, version: str) -> None:
        """Remember that inputs+params ``build_key`` produced ``version`` (for resumable builds)."""
        ...

    def built_version(self, bot_id: str, build_key: str) -> str | None: ...


@runtime_checkable
class SnapshotReader(Protocol):
    def read_snapshot(self, request: SnapshotRequest) -> Snapshot:
        """Manifest and bytes, verified against ``request.sha256``; never past ``max_bytes``.

        Raises ArtifactMissing, ArtifactCorrupt (truncated, or another sha256),
        ArtifactTooLarge, or a RetriableError / OSError when the store is briefly unreadable.
        """
        ...
