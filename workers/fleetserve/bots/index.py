"""``fleet.json``: the index of a fleet directory, encoded and decoded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

import orjson

from fleetserve.errors import BotInputError

INDEX_NAME: Final = "fleet.json"
INDEX_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One bot of a fleet; ``file`` is relative to the fleet directory."""

    bot_id: str
    language: str
    file: str
    source: str = ""
    license: str = ""


@dataclass(frozen=True, slots=True)
class FleetIndex:
    entries: tuple[IndexEntry, ...]
    seed: int | None = None
    version: int = INDEX_VERSION


def encode_index(index: FleetIndex) -> bytes:
    """Stable bytes: the same fleet always gives the same file."""
    document = {
        "version": index.version,
        "seed": index.seed,
        "bots": [_entry_document(entry) for entry in index.entries],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def _entry_document(entry: IndexEntry) -> dict[str, str]:
    document = {"bot_id": entry.bot_id, "language": entry.language, "file": entry.file}
    document["source"] = entry.source
    if entry.license:
        document["license"] = entry.license
    return document


def read_index(path: Path) -> FleetIndex:
    """Parse a ``fleet.json``; any structural problem is ``bad_fleet_index``."""
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise _bad(path, f"cannot read it as JSON ({exc})") from None
    if not isinstance(document, dict):
        raise _bad(path, "expected a JSON object")
    if document.get("version") != INDEX_VERSION:
        raise _bad(path, f"unsupported version {document.get('version')!r}; expected 1")
    seed = document.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise _bad(path, "'seed' must be an integer or null")
    bots = document.get("bots")
    if not isinstance(bots, list):
        raise _bad(path, "'bots' must be a list")
    return FleetIndex(tuple(_entry(path, n, item) for n, item in enumerate(bots)), seed)


def _entry(path: Path, position: int, item: Any) -> IndexEntry:
    where = f"bots[{position}]"
    if not isinstance(item, Mapping):
        raise _bad(path, f"{where} must be an object")
    fields = {key: item.get(key, "") for key in ("bot_id", "language", "file", "source")}
    fields["license"] = item.get("license", "")
    for key, value in fields.items():
        if not isinstance(value, str):
            raise _bad(path, f"{where}.{key} must be a string")
    for key in ("bot_id", "file"):
        if not fields[key]:
            raise _bad(path, f"{where}.{key} is missing")
    if not _is_inside(fields["file"]):
        raise _bad(
            path, f"{where}.file {fields['file']!r} must be a relative path inside the fleet"
        )
    return IndexEntry(**fields)


def _is_inside(file: str) -> bool:
    # An index is data, not trusted code: it may not point outside its own directory.
    parts: Sequence[str] = PurePosixPath(file).parts
    return not PurePosixPath(file).is_absolute() and ".." not in parts and "\\" not in file


def _bad(path: Path, detail: str) -> BotInputError:
    return BotInputError("bad_fleet_index", f"{path}: {detail}")
