"""The fp32 model kept beside a quantized snapshot (``build --keep-fp32``), for ``eval``.

It lives next to the snapshot folder, not inside it, so the snapshot stays exactly what the
store published and verified; the manifest records its file name and sha256.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fleetserve.errors import ArtifactError
from fleetserve.store.base import ArtifactStore, sha256_hex
from fleetserve.store.local import LocalDirectoryStore


def sidecar_path(store: LocalDirectoryStore, bot_id: str, version: str) -> Path:
    return store.snapshot_dir(bot_id, version).parent / f"{version}.fp32.onnx"


def write_fp32_sidecar(
    store: ArtifactStore, bot_id: str, version: str, model: bytes
) -> dict[str, Any]:
    if not isinstance(store, LocalDirectoryStore):
        raise ArtifactError("--keep-fp32 needs a local directory store")
    path = sidecar_path(store, bot_id, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(model)
    os.replace(temporary, path)
    return {"file": path.name, "sha256": sha256_hex(model), "size_bytes": len(model)}


def read_fp32_sidecar(
    store: LocalDirectoryStore, bot_id: str, version: str, manifest: dict[str, Any]
) -> bytes | None:
    """The kept fp32 model, checked against the manifest; None when the build kept none."""
    record = manifest.get("model_fp32")
    if not record:
        return None
    data = sidecar_path(store, bot_id, version).read_bytes()
    if sha256_hex(data) != record["sha256"]:
        raise ArtifactError(f"{bot_id}/{version}: the kept fp32 model does not match its sha256")
    return data
