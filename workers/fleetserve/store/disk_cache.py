"""A worker's local copy of the snapshots it fetched: content-addressed, bounded, verified.

``<root>/<sha256[:2]>/<sha256>.snap`` holds one snapshot as a frame (the manifest and the
whole model, ``store/frame.py``). The name is the model's sha256, so a file can only ever
hold one model: every read hashes the bytes against the name (and the manifest against
both), and a file that fails is deleted and fetched again. Writes go to a temporary file
renamed into place, so two processes sharing the folder (a restarted worker, a second
group on the same machine) never see half a file, and the second one fetches nothing.

The folder is bounded in bytes: past the budget, the least recently used files (by
modification time, touched on every hit) are deleted until it is under 90 % of it.
Another process's files count once the folder is next scanned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from pathlib import Path

from fleetserve.errors import ArtifactCorrupt, ArtifactTooLarge
from fleetserve.store.base import Snapshot, sha256_hex
from fleetserve.store.frame import (
    FRAME_OVERHEAD,
    decode_frame,
    encode_frame,
    frame_manifest_length,
    parse_manifest,
)

logger = logging.getLogger(__name__)

SUFFIX = ".snap"
TMP_PREFIX = ".tmp-"
LOW_WATER = 0.9


class DiskCache:
    """Snapshots by sha256 in a folder, within ``budget_bytes``; safe across threads."""

    def __init__(self, root: Path, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"disk cache budget must be positive, not {budget_bytes}")
        self.root = Path(root)
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._used: int | None = None  # learned by the first scan, not in the constructor
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"DiskCache({str(self.root)!r}, {self.budget_bytes})"

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}{SUFFIX}"

    def get(self, sha256: str, max_bytes: int | None = None) -> Snapshot | None:
        """The verified snapshot, or None when it is not here (or was not intact)."""
        path = self.path(sha256)
        try:
            with path.open("rb") as file:
                data = self._read(file.fileno(), sha256, max_bytes)
        except FileNotFoundError:
            self.misses += 1
            return None
        try:
            snapshot = _verified(data, sha256)
        except ArtifactCorrupt as exc:
            logger.warning("disk cache: %s is not intact (%s); fetching it again", path, exc)
            self._discard(path)
            self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used
        self.hits += 1
        return snapshot

    def put(self, sha256: str, manifest: bytes, model: bytes) -> None:
        """Keep a snapshot (already verified by the caller); never raises for a full disk."""
        path = self.path(sha256)
        data = encode_frame(manifest, model)
        tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as exc:
            logger.warning("disk cache: could not keep %s: %s", path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        with self._lock:
            used = self._scan() if self._used is None else self._used
            self._used = used + len(data)
            if self._used > self.budget_bytes:
                self._used = self._evict()

    def used_bytes(self) -> int:
        with self._lock:
            self._used = self._scan()
            return self._used

    # -- internals ----------------------------------------------------------------------

    def _read(self, fd: int, sha256: str, max_bytes: int | None) -> bytes:
        size = os.fstat(fd).st_size
        head = os.pread(fd, FRAME_OVERHEAD, 0)
        try:
            model_size = size - FRAME_OVERHEAD - frame_manifest_length(head)
        except ArtifactCorrupt:
            return head  # _verified says why
        if max_bytes is not None and model_size > max_bytes:
            raise ArtifactTooLarge(
                f"snapshot {sha256[:16]} is {model_size} bytes, over {max_bytes}"
            )
        return os.pread(fd, size, 0)

    def _files(self) -> list[tuple[float, int, Path]]:
        found: list[tuple[float, int, Path]] = []
        if not self.root.is_dir():
            return found
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                if entry.name.endswith(SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        stat = entry.stat()
                        found.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        return found

    def _scan(self) -> int:
        return sum(size for _, size, _ in self._files())

    def _evict(self) -> int:
        """Delete the least recently used files down to the low-water mark; bytes left."""
        files = sorted(self._files())
        used = sum(size for _, size, _ in files)
        target = LOW_WATER * self.budget_bytes
        evicted = 0
        for _, size, path in files:
            if used <= target:
                break
            self._discard(path)
            used -= size
            evicted += 1
        logger.info("disk cache: evicted %d snapshots, %d bytes kept", evicted, used)
        return used

    @staticmethod
    def _discard(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _verified(data: bytes, sha256: str) -> Snapshot:
    manifest_bytes, model = decode_frame(data)
    actual = sha256_hex(model)
    if actual != sha256:
        raise ArtifactCorrupt(f"the bytes hash to {actual}")
    manifest = parse_manifest(manifest_bytes, f"cached snapshot {sha256[:16]}")
    declared = manifest.get("model")
    if not isinstance(declared, dict) or declared.get("sha256") != sha256:
        raise ArtifactCorrupt("its manifest names other bytes")
    return Snapshot(manifest, model)
