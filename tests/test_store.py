"""The local artifact store: content-addressed, immutable, atomic, verified on read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetserve.errors import ArtifactCorrupt, ArtifactError, ArtifactMissing, ArtifactTooLarge
from fleetserve.store.base import (
    MANIFEST_FILE,
    MODEL_FILE,
    SnapshotRequest,
    sha256_hex,
    version_for,
)
from fleetserve.store.local import LocalDirectoryStore

# The store treats a model as opaque bytes; the real ONNX path is covered by the builder tests.
MODEL = b"model-bytes-v1"


def test_put_then_read(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    ref = store.put_snapshot("bank", MODEL, {"labels": ["a", "b"]})
    assert ref.version == version_for(MODEL)
    assert ref.sha256 == sha256_hex(MODEL)
    assert store.read_model("bank", ref.version) == MODEL
    manifest = store.read_manifest("bank", ref.version)
    assert manifest["labels"] == ["a", "b"]
    assert manifest["model"] == {"sha256": ref.sha256, "size_bytes": len(MODEL)}
    assert manifest["bot_id"] == "bank"
    assert manifest["version"] == ref.version
    assert store.versions("bank") == [ref.version]
    assert store.bots() == ["bank"]


def test_same_bytes_same_address_and_first_manifest_wins(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    first = store.put_snapshot("bank", MODEL, {"note": "first"})
    second = store.put_snapshot("bank", MODEL, {"note": "second"})
    assert first == second
    assert store.read_manifest("bank", first.version)["note"] == "first", "snapshots are immutable"


def test_no_half_snapshot_after_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalDirectoryStore(tmp_path)

    def crash(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(ArtifactError, match="disk full"):
        store.put_snapshot("bank", MODEL, {})
    assert store.versions("bank") == []
    assert not store.exists("bank", version_for(MODEL))
    leftovers = [p for p in (tmp_path / "bank").iterdir()]
    assert leftovers == [], "the staging folder is removed"


def test_leftover_staging_folders_are_invisible(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    (tmp_path / "bank" / ".tmp-dead").mkdir(parents=True)
    (tmp_path / "bank" / ".tmp-dead" / MODEL_FILE).write_bytes(b"half")
    assert store.versions("bank") == []


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    ref = store.put_snapshot("bank", MODEL, {})
    (tmp_path / "bank" / ref.version / MODEL_FILE).write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="changed after publishing"):
        store.read_model("bank", ref.version)


def test_missing_and_corrupt_snapshots(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    with pytest.raises(ArtifactError, match="no snapshot bank/nope"):
        store.read_manifest("bank", "nope")
    ref = store.put_snapshot("bank", MODEL, {})
    (tmp_path / "bank" / ref.version / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt"):
        store.read_manifest("bank", ref.version)


def test_build_keys_point_at_existing_snapshots_only(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    assert store.built_version("bank", "k1") is None
    ref = store.put_snapshot("bank", MODEL, {})
    store.record_build("bank", "k1", ref.version)
    assert store.built_version("bank", "k1") == ref.version
    store.record_build("bank", "k2", "deadbeefdeadbeef")
    assert store.built_version("bank", "k2") is None, "a key to a vanished snapshot means rebuild"
    assert store.bots() == ["bank"]


def test_a_snapshot_is_read_whole_with_one_manifest_and_checked_first(tmp_path: Path) -> None:
    """read_snapshot (a worker's miss): a manifest naming other bytes, or declaring more than
    the cap, is refused before the model file is opened; the bytes are then checked too."""
    store = LocalDirectoryStore(tmp_path)
    ref = store.put_snapshot("bank", MODEL, {"labels": ["a"]})
    snapshot = store.read_snapshot(SnapshotRequest("bank", ref.version, ref.sha256))
    assert snapshot.model == MODEL
    assert snapshot.manifest["labels"] == ["a"]
    (tmp_path / "bank" / ref.version / MODEL_FILE).unlink()  # any read of it would fail
    with pytest.raises(ArtifactCorrupt, match="the deployment says 00"):
        store.read_snapshot(SnapshotRequest("bank", ref.version, "00" * 32))
    with pytest.raises(ArtifactTooLarge, match=f"is {len(MODEL)} bytes"):
        store.read_snapshot(SnapshotRequest("bank", ref.version, ref.sha256, max_bytes=4))
    with pytest.raises(ArtifactMissing, match=f"has no {MODEL_FILE}"):
        store.read_snapshot(SnapshotRequest("bank", ref.version, ref.sha256))
    (tmp_path / "bank" / ref.version / MODEL_FILE).write_bytes(b"tampered")
    with pytest.raises(ArtifactCorrupt, match="changed after publishing"):
        store.read_snapshot(SnapshotRequest("bank", ref.version, ref.sha256))
