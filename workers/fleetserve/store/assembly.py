"""Put one snapshot back together from the records read at its location. Pure.

The reader hands over every record it reads from the snapshot's first offset on; the
assembly decides, record by record, whether the snapshot is there (``model_missing``
otherwise), whether it is the model the deployment names and within the size cap (checked
from the first record's headers, before anything more is read), and whether every chunk
arrived (``model_corrupt`` when one is missing or the bytes hash to anything else).
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetserve.errors import ArtifactCorrupt, ArtifactMissing, ArtifactTooLarge
from fleetserve.store.base import Snapshot, SnapshotRequest, sha256_hex
from fleetserve.store.frame import (
    CHUNK_SEPARATOR,
    ChunkInfo,
    chunk_info,
    chunk_key,
    decode_frame,
    parse_manifest,
)

RawHeaders = Sequence[tuple[str, bytes | None]]


class Assembly:
    """Records in, one verified :class:`Snapshot` out (or the reason there is none)."""

    def __init__(self, request: SnapshotRequest, where: str, first_offset: int) -> None:
        self.request = request
        self.where = where  # "topic[partition]@offset", for messages
        self.first_offset = first_offset
        self._base = chunk_key(request.bot_id, request.version, 0)
        self._manifest: dict[str, object] | None = None
        self._parts: list[bytes] = []
        self._received = 0
        self._info: ChunkInfo | None = None

    @property
    def started(self) -> bool:
        """The snapshot's first record was found."""
        return self._info is not None

    @property
    def complete(self) -> bool:
        return self._info is not None and len(self._parts) == self._info.count

    def add(self, offset: int, key: bytes | None, value: bytes | None, headers: RawHeaders) -> bool:
        """Take one record read from the partition; True once the snapshot is whole."""
        if offset < self.first_offset or self.complete:
            return self.complete  # left over from an earlier read of this partition
        if self._info is None:
            self._first(offset, key, value, headers)
        else:
            self._next(key, value, headers)
        return self.complete

    def end_of_partition(self) -> None:
        """The partition ended before the snapshot did: missing, or truncated."""
        if self._info is None:
            raise ArtifactMissing(
                f"{self._name()}: the models topic holds nothing at {self.where} (past its end)"
            )
        raise ArtifactCorrupt(
            f"{self._name()} is truncated: {len(self._parts)} of {self._info.count} chunks "
            f"found from {self.where} to the end of the partition"
        )

    def snapshot(self) -> Snapshot:
        """The whole snapshot, once every byte was checked against the deployment's sha256."""
        assert self._info is not None
        assert self._manifest is not None
        assert self.complete
        model = b"".join(self._parts)
        if len(model) != self._info.size:
            raise ArtifactCorrupt(
                f"{self._name()}: {len(model)} bytes arrived, its headers say {self._info.size}"
            )
        actual = sha256_hex(model)
        if actual != self.request.sha256:
            raise ArtifactCorrupt(
                f"{self._name()}: the bytes from {self.where} hash to {actual}, the deployment "
                f"says {self.request.sha256}"
            )
        declared = self._manifest.get("model")
        if not isinstance(declared, dict) or declared.get("sha256") != actual:
            raise ArtifactCorrupt(f"{self._name()}: its manifest names other bytes than it holds")
        return Snapshot(dict(self._manifest), model)

    # -- records ------------------------------------------------------------------------

    def _first(
        self, offset: int, key: bytes | None, value: bytes | None, headers: RawHeaders
    ) -> None:
        found = _text(key)
        if offset != self.first_offset or found != self._base or value is None:
            what = "a tombstone" if value is None and found == self._base else repr(found)
            raise ArtifactMissing(
                f"{self._name()}: the models topic no longer holds it at {self.where} "
                f"(found {what} at offset {offset}; compacted, deleted or never there)"
            )
        info = chunk_info(headers)
        if info.index != 0:
            raise ArtifactCorrupt(f"{self._name()}: {self.where} is chunk {info.index}, not 0")
        if info.sha256 != self.request.sha256:
            raise ArtifactCorrupt(
                f"{self._name()}: the models topic holds sha256 {info.sha256} at {self.where}, "
                f"the deployment says {self.request.sha256}"
            )
        cap = self.request.max_bytes
        if cap is not None and info.size > cap:
            raise ArtifactTooLarge(
                f"{self._name()} is {info.size} bytes, over {cap} bytes; not read further"
            )
        manifest, payload = decode_frame(value)
        self._manifest = parse_manifest(manifest, self._name())
        self._info = info
        self._take(payload)

    def _next(self, key: bytes | None, value: bytes | None, headers: RawHeaders) -> None:
        assert self._info is not None
        found = _text(key)
        if found != self._base and not found.startswith(f"{self._base}{CHUNK_SEPARATOR}"):
            return  # another snapshot published between our chunks
        expected = len(self._parts)
        info = chunk_info(headers) if value is not None else None
        if info is not None and info.sha256 == self._info.sha256 and info.index < expected:
            return  # a second copy of a chunk we have (the snapshot was published again)
        if info is None or info.index != expected or info.sha256 != self._info.sha256:
            raise ArtifactCorrupt(
                f"{self._name()} is truncated: chunk {expected} of {self._info.count} is "
                f"missing after {self.where} (found {found!r} instead)"
            )
        _, payload = decode_frame(value or b"")
        self._take(payload)

    def _take(self, payload: bytes) -> None:
        assert self._info is not None
        self._received += len(payload)
        cap = self.request.max_bytes
        if cap is not None and self._received > cap:
            raise ArtifactTooLarge(f"{self._name()}: over {cap} bytes; not read further")
        if self._received > self._info.size:
            raise ArtifactCorrupt(
                f"{self._name()}: more bytes than the {self._info.size} its headers announce"
            )
        self._parts.append(payload)

    def _name(self) -> str:
        return f"snapshot {self._base}"


def _text(key: bytes | None) -> str:
    return (key or b"").decode("utf-8", errors="replace")
