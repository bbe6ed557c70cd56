"""Write a fleet directory: one ``<bot_id>.jsonl`` per bot and ``fleet.json`` last.

A new directory is written under a temporary name and renamed into place, so it appears
whole or not at all. An existing one is updated file by file, each file atomically and only
when its bytes change (unchanged files keep their mtime); ``fleet.json`` is replaced last, so
it is the commit point, and files only the old index listed are removed after it. Rerunning
after a crash converges on the same result.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from fleetserve.bots.datasets import license_for
from fleetserve.bots.definition import BotDefinition
from fleetserve.bots.index import INDEX_NAME, FleetIndex, IndexEntry, encode_index, read_index
from fleetserve.errors import BotInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriteReport:
    out_dir: Path
    bots: int
    written: int
    unchanged: int
    removed: int


def encode_bot(bot: BotDefinition) -> bytes:
    """The bot as JSONL, the format :func:`fleetserve.bots.loader.load_bot` reads back."""
    # Each line goes into the buffer at once: keeping millions of small orjson results alive
    # in a list was measured 15x slower (allocator churn), 11 s instead of 0.7 s for 10,000 bots.
    buffer = io.BytesIO()
    write = buffer.write
    for u in bot.utterances:
        write(orjson.dumps({"text": u.text, "intent": u.intent}))
        write(b"\n")
    for text in bot.out_of_scope:
        write(orjson.dumps({"text": text, "out_of_scope": True}))
        write(b"\n")
    return buffer.getvalue()


def write_fleet(
    bots: Iterable[BotDefinition], out_dir: Path, *, seed: int | None = None
) -> WriteReport:
    """Write ``bots`` to ``out_dir`` (see the module docstring for the atomicity promise)."""
    if out_dir.exists():
        report = _write_into(bots, out_dir, seed)
    else:
        report = _write_staged(bots, out_dir, seed)
    log.info(
        "fleet %s: %d bots, %d files written, %d unchanged, %d removed",
        out_dir,
        report.bots,
        report.written,
        report.unchanged,
        report.removed,
    )
    return report


def _write_staged(bots: Iterable[BotDefinition], out_dir: Path, seed: int | None) -> WriteReport:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{secrets.token_hex(4)}")
    staging.mkdir()
    try:
        report = _write_into(bots, staging, seed)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return WriteReport(out_dir, report.bots, report.written, report.unchanged, report.removed)


def _write_into(bots: Iterable[BotDefinition], folder: Path, seed: int | None) -> WriteReport:
    previous = _listed_files(folder)
    entries: list[IndexEntry] = []
    seen: set[str] = set()
    written = 0
    for bot in bots:
        if bot.bot_id in seen:
            raise BotInputError("duplicate_bot_id", f"bot id {bot.bot_id!r} appears twice")
        seen.add(bot.bot_id)
        file = f"{bot.bot_id}.jsonl"
        written += write_if_changed(folder / file, encode_bot(bot))
        entries.append(
            IndexEntry(bot.bot_id, bot.language, file, bot.source, license_for(bot.source))
        )
    written += write_if_changed(folder / INDEX_NAME, encode_index(FleetIndex(tuple(entries), seed)))
    stale = previous - {entry.file for entry in entries}
    for file in sorted(stale):
        (folder / file).unlink(missing_ok=True)
    return WriteReport(folder, len(entries), written, len(entries) + 1 - written, len(stale))


def _listed_files(folder: Path) -> set[str]:
    if not (folder / INDEX_NAME).is_file():
        return set()
    try:
        return {entry.file for entry in read_index(folder / INDEX_NAME).entries}
    except BotInputError as exc:
        log.warning("ignoring the unreadable old index: %s", exc)
        return set()


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace ``path`` with ``data`` unless it already holds exactly that."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    temporary = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        # No fsync: a generated fleet is cheap to regenerate, and 10,000 fsyncs are not.
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return True
