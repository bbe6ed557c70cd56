"""Find the bots under a path (a file, a folder of bot files, or a fleet) and load each.

One bad bot never stops the others: each gets its own :class:`BotResult`. Only a path
that cannot hold any bot at all (missing, no bot files, a broken ``fleet.json``) raises.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from fleetserve.bots.assemble import DEFAULT_CONFLICT_POLICY, ConflictPolicy, LoadedBot
from fleetserve.bots.index import INDEX_NAME, read_index
from fleetserve.bots.loader import load_bot_with_report
from fleetserve.bots.rows import SUFFIXES
from fleetserve.errors import BotInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BotSource:
    """Where one bot comes from, before it is loaded; ``error`` is set when it cannot be."""

    path: Path
    bot_id: str
    language: str | None = None
    source: str = ""
    error: BotInputError | None = None


@dataclass(frozen=True, slots=True)
class BotResult:
    """A loaded bot, or the reason it could not be loaded."""

    path: Path
    bot_id: str
    loaded: LoadedBot | None = None
    error: BotInputError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def discover_bots(path: Path) -> Iterator[BotResult]:
    """Load every bot under ``path`` lazily, one at a time, so a 10,000-bot fleet stays small.

    Path-level problems raise here, before the first bot is loaded.
    """
    sources = find_bots(path)
    return (load_source(source) for source in sources)


def load_source(
    source: BotSource, conflicts: ConflictPolicy = DEFAULT_CONFLICT_POLICY
) -> BotResult:
    """Load one found bot; never raises :class:`BotInputError`."""
    if source.error is not None:
        return BotResult(source.path, source.bot_id, error=source.error)
    try:
        loaded = load_bot_with_report(
            source.path,
            bot_id=source.bot_id,
            language=source.language,
            source=source.source,
            conflicts=conflicts,
        )
    except BotInputError as exc:
        return BotResult(source.path, source.bot_id, error=exc)
    return BotResult(source.path, source.bot_id, loaded=loaded)


def find_bots(path: Path) -> list[BotSource]:
    """The bots under ``path`` in a stable order, without reading them."""
    if path.is_file():
        return _from_index(path.parent) if path.name == INDEX_NAME else [BotSource(path, path.stem)]
    if not path.is_dir():
        raise BotInputError("not_found", f"{path}: no such file or directory")
    sources = _from_index(path) if (path / INDEX_NAME).is_file() else _from_folder(path)
    if not sources:
        known = ", ".join(sorted(SUFFIXES))
        raise BotInputError("no_bots", f"{path}: no bot files ({known}) and no {INDEX_NAME}")
    return sources


def _from_index(folder: Path) -> list[BotSource]:
    index = read_index(folder / INDEX_NAME)
    seen: set[str] = set()
    sources: list[BotSource] = []
    for entry in index.entries:
        source = BotSource(folder / entry.file, entry.bot_id, entry.language or None, entry.source)
        sources.append(_unique(source, seen, str(folder / INDEX_NAME)))
    return sources


def _from_folder(folder: Path) -> list[BotSource]:
    files = sorted(p for p in folder.iterdir() if _is_bot_file(p))
    log.debug("found %d bot files in %s", len(files), folder)
    seen: set[str] = set()
    return [_unique(BotSource(p, p.stem), seen, str(folder)) for p in files]


def _is_bot_file(path: Path) -> bool:
    # Dot files are editor backups and half-written temporaries, never bots.
    return path.suffix.lower() in SUFFIXES and not path.name.startswith(".") and path.is_file()


def _unique(source: BotSource, seen: set[str], where: str) -> BotSource:
    """The second bot claiming an id gets an error; the first keeps it."""
    if source.bot_id not in seen:
        seen.add(source.bot_id)
        return source
    error = BotInputError(
        "duplicate_bot_id",
        f"{source.path}: bot id {source.bot_id!r} is already used by another bot in {where}",
    )
    return replace(source, error=error)
