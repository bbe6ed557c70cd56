"""Snapshots in a local directory, written atomically.

A snapshot is written into a hidden temporary folder beside its final place, flushed to
disk, then renamed into ``<bot>/<version>/`` in one step: a crash leaves either nothing or
a whole snapshot, never half of one. Leftover temporary folders are ignored by readers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from fleetserve.errors import ArtifactCorrupt, ArtifactError, ArtifactMissing, ArtifactTooLarge
from fleetserve.store.base import (
    MANIFEST_FILE,
    MODEL_FILE,
    Snapshot,
    SnapshotRef,
    SnapshotRequest,
    sha256_hex,
    version_for,
)

TMP_PREFIX = ".tmp-"
BUILDS_DIR = ".builds"


class LocalDirectoryStore:
    """An :class:`~fleetserve.store.base.ArtifactStore` rooted at a directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalDirectoryStore({str(self.root)!r})"

    def snapshot_dir(self, bot_id: str, version: str) -> Path:
        return self.root / bot_id / version

    def put_snapshot(
        self, bot_id: str, model_bytes: bytes, manifest: Mapping[str, Any]
    ) -> SnapshotRef:
        version = version_for(model_bytes)
        digest = sha256_hex(model_bytes)
        final = self.snapshot_dir(bot_id, version)
        ref = SnapshotRef(bot_id, version, digest)
        if final.is_dir():
            return ref  # same bytes, same address: already published and immutable
        staging = final.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            _write_synced(staging / MODEL_FILE, model_bytes)
            body = {**manifest, "bot_id": bot_id, "version": version}
            body["model"] = {
                **body.get("model", {}),
                "sha256": digest,
                "size_bytes": len(model_bytes),
            }
            _write_synced(staging / MANIFEST_FILE, orjson.dumps(body, option=orjson.OPT_INDENT_2))
            os.rename(staging, final)
        except FileExistsError:
            pass  # another builder published the same bytes first
        except OSError as exc:
            if not final.is_dir():
                raise ArtifactError(f"could not publish {bot_id}/{version}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return ref

    def exists(self, bot_id: str, version: str) -> bool:
        return (self.snapshot_dir(bot_id, version) / MANIFEST_FILE).is_file()

    def read_manifest(self, bot_id: str, version: str) -> dict[str, Any]:
        path = self.snapshot_dir(bot_id, version) / MANIFEST_FILE
        try:
            manifest: dict[str, Any] = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise ArtifactMissing(f"no snapshot {bot_id}/{version} in {self.root}") from None
        except orjson.JSONDecodeError as exc:
            raise ArtifactCorrupt(f"manifest of {bot_id}/{version} is corrupt: {exc}") from None
        return manifest

    def read_model(self, bot_id: str, version: str, max_bytes: int | None = None) -> bytes:
        return self._checked_model(bot_id, version, self.read_manifest(bot_id, version), max_bytes)

    def read_snapshot(self, request: SnapshotRequest) -> Snapshot:
        """Manifest and bytes for a deployment, the manifest read once (a worker's miss)."""
        bot_id, version = request.bot_id, request.version
        manifest = self.read_manifest(bot_id, version)
        # Both refused before the model file is read.
        stored = manifest.get("model", {}).get("sha256")
        if stored != request.sha256:
            raise ArtifactCorrupt(
                f"snapshot {request.key}: the store's manifest has sha256 {stored}, "
                f"the deployment says {request.sha256}"
            )
        size = manifest.get("model", {}).get("size_bytes")
        if request.max_bytes is not None and isinstance(size, int) and size > request.max_bytes:
            raise ArtifactTooLarge(f"snapshot {request.key} is {size} bytes")
        return Snapshot(manifest, self._checked_model(bot_id, version, manifest, request.max_bytes))

    def _checked_model(
        self, bot_id: str, version: str, manifest: Mapping[str, Any], max_bytes: int | None
    ) -> bytes:
        path = self.snapshot_dir(bot_id, version) / MODEL_FILE
        try:
            with path.open("rb") as file:
                data = file.read(-1 if max_bytes is None else max_bytes + 1)
        except FileNotFoundError:
            raise ArtifactMissing(f"snapshot {bot_id}/{version} has no {MODEL_FILE}") from None
        if max_bytes is not None and len(data) > max_bytes:
            raise ArtifactTooLarge(
                f"snapshot {bot_id}/{version}: {MODEL_FILE} is over {max_bytes} bytes"
            )
        expected = manifest.get("model", {}).get("sha256")
        actual = sha256_hex(data)
        if actual != expected:
            raise ArtifactCorrupt(
                f"snapshot {bot_id}/{version}: {MODEL_FILE} has sha256 {actual}, "
                f"its manifest says {expected}; the file was changed after publishing"
            )
        return data

    def versions(self, bot_id: str) -> list[str]:
        folder = self.root / bot_id
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if _is_snapshot(p))

    def bots(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not _hidden(p))

    def record_build(self, bot_id: str, build_key: str, version: str) -> None:
        path = self.root / bot_id / BUILDS_DIR / build_key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}")
        tmp.write_text(version)
        os.replace(tmp, path)

    def built_version(self, bot_id: str, build_key: str) -> str | None:
        with contextlib.suppress(FileNotFoundError):
            version = (self.root / bot_id / BUILDS_DIR / build_key).read_text().strip()
            return version if self.exists(bot_id, version) else None
        return None


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _is_snapshot(path: Path) -> bool:
    return path.is_dir() and not _hidden(path) and (path / MANIFEST_FILE).is_file()
