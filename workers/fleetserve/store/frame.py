"""How a snapshot lies in the models topic: records, keys, headers, chunks. Pure.

A snapshot is one record, or a run of records when the model is larger than one record
may be. Every record's value is a *frame*::

    b"FSM1" | manifest length (4 bytes, big-endian) | manifest JSON | model bytes

The first record (key ``<bot>/<version>``) carries the manifest and the first part of the
model; the others (keys ``<bot>/<version>#1`` ... ``#n-1``) carry the rest with an empty
manifest, in the same partition, after the first. Distinct keys keep compaction from
folding chunks into each other; a re-publish of the same snapshot has the same keys and
lands in the same partition, so compaction keeps one copy.

Every record carries the model's sha256, its size and ``i/n`` in headers, so a reader
refuses another model or an oversized one before it reads further, and knows when it has
everything. The disk cache stores the same frame, with the whole model, in one file.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fleetserve.core.records import Headers
from fleetserve.errors import ArtifactCorrupt, ArtifactError

MAGIC = b"FSM1"
_LENGTH = struct.Struct(">I")
FRAME_OVERHEAD = len(MAGIC) + _LENGTH.size
# Room left in each record for its key, headers and the record batch around it.
RECORD_HEADROOM = 4096

HEADER_SHA256 = "fleetserve_model-sha256"
HEADER_SIZE = "fleetserve_model-size"
HEADER_CHUNK = "fleetserve_model-chunk"
CHUNK_SEPARATOR = "#"


def chunk_key(bot_id: str, version: str, index: int) -> str:
    base = f"{bot_id}/{version}"
    return base if index == 0 else f"{base}{CHUNK_SEPARATOR}{index}"


def encode_frame(manifest: bytes, payload: bytes) -> bytes:
    return b"".join((MAGIC, _LENGTH.pack(len(manifest)), manifest, payload))


def frame_manifest_length(prefix: bytes) -> int:
    """The manifest length from a frame's first ``FRAME_OVERHEAD`` bytes."""
    if len(prefix) < FRAME_OVERHEAD or prefix[: len(MAGIC)] != MAGIC:
        raise ArtifactCorrupt("not a fleetserve snapshot frame (bad magic or truncated)")
    (length,) = _LENGTH.unpack_from(prefix, len(MAGIC))
    return int(length)


def decode_frame(value: bytes) -> tuple[bytes, bytes]:
    """(manifest bytes, payload) of one frame; ArtifactCorrupt if it is not one."""
    length = frame_manifest_length(value[:FRAME_OVERHEAD])
    end = FRAME_OVERHEAD + length
    if end > len(value):
        raise ArtifactCorrupt(f"snapshot frame is truncated: manifest of {length} bytes announced")
    return value[FRAME_OVERHEAD:end], value[end:]


@dataclass(frozen=True)
class ChunkRecord:
    """One record to produce: key, value, headers, and its place in the snapshot."""

    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    index: int
    count: int


def split_snapshot(
    bot_id: str, version: str, manifest: bytes, model: bytes, sha256: str, record_limit: int
) -> list[ChunkRecord]:
    """The records of one snapshot, each at most ``record_limit`` bytes with its envelope."""
    room = record_limit - RECORD_HEADROOM - FRAME_OVERHEAD
    first_room = room - len(manifest)
    if first_room <= 0:
        raise ArtifactError(
            f"{bot_id}/{version}: a manifest of {len(manifest)} bytes does not fit a record of "
            f"{record_limit} bytes (the models topic's max.message.bytes)"
        )
    parts = [model[:first_room]]
    parts += [model[start : start + room] for start in range(first_room, len(model), room)]
    count = len(parts)
    return [
        ChunkRecord(
            key=chunk_key(bot_id, version, index),
            value=encode_frame(manifest if index == 0 else b"", part),
            headers=(
                (HEADER_SHA256, sha256.encode()),
                (HEADER_SIZE, str(len(model)).encode()),
                (HEADER_CHUNK, f"{index}/{count}".encode()),
            ),
            index=index,
            count=count,
        )
        for index, part in enumerate(parts)
    ]


@dataclass(frozen=True)
class ChunkInfo:
    sha256: str
    size: int
    index: int
    count: int


def chunk_info(headers: Headers | Sequence[tuple[str, bytes | None]]) -> ChunkInfo:
    """The snapshot headers of one record; ArtifactCorrupt when any is missing or malformed."""
    found = {name: value for name, value in headers if value is not None}
    try:
        sha256 = found[HEADER_SHA256].decode("ascii")
        size = int(found[HEADER_SIZE])
        index_text, _, count_text = found[HEADER_CHUNK].decode("ascii").partition("/")
        index, count = int(index_text), int(count_text)
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ArtifactCorrupt(f"snapshot record has no usable {exc} header") from None
    if not (0 <= index < count and size >= 0 and len(sha256) == 64):
        raise ArtifactCorrupt(f"snapshot record headers are inconsistent: {index}/{count}, {size}")
    return ChunkInfo(sha256, size, index, count)


def parse_manifest(raw: bytes, what: str) -> dict[str, Any]:
    try:
        manifest = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ArtifactCorrupt(f"manifest of {what} is corrupt: {exc}") from None
    if not isinstance(manifest, dict):
        raise ArtifactCorrupt(f"manifest of {what} is not a JSON object")
    return manifest
