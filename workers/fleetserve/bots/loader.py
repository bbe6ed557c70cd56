"""Load one bot from a JSONL or CSV file.

JSONL: one ``{"text": ..., "intent": ...}`` per line; ``{"text": ..., "out_of_scope": true}``
is an out-of-scope example that calibrates the fallback. CSV: a header ``text,intent``
(extra columns ignored); an empty intent cell is out of scope.
"""

from __future__ import annotations

from pathlib import Path

from fleetserve.bots.assemble import DEFAULT_CONFLICT_POLICY, ConflictPolicy, LoadedBot, assemble
from fleetserve.bots.definition import BotDefinition, validate_bot_id, validate_language
from fleetserve.bots.rows import SUFFIXES, BotFormat, parse_rows
from fleetserve.bots.text import detect_language
from fleetserve.errors import BotInputError


def parse_bot(
    data: bytes,
    fmt: BotFormat,
    *,
    name: str,
    bot_id: str,
    language: str | None = None,
    source: str = "",
    conflicts: ConflictPolicy = DEFAULT_CONFLICT_POLICY,
) -> LoadedBot:
    """A bot from the bytes of its file; pure. ``name`` is what error messages call the file.

    ``language`` is a hint (e.g. from a fleet index); without one, Hangul means ``ko``,
    anything else ``en``.
    """
    try:
        validate_bot_id(bot_id)
        if language is not None:
            validate_language(language)
    except BotInputError as exc:
        raise BotInputError(exc.reason, f"{name}: {exc}") from None
    rows = parse_rows(data, fmt, name)
    chosen = language if language is not None else detect_language(r.text for r in rows)
    return assemble(
        rows, name=name, bot_id=bot_id, language=chosen, source=source, conflicts=conflicts
    )


def format_for(path: Path) -> BotFormat:
    """The format a file's suffix declares; raises ``unsupported_format`` otherwise."""
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(SUFFIXES))
        raise BotInputError(
            "unsupported_format", f"{path}: not a bot file; expected one of {known}"
        )
    return fmt


def load_bot(
    path: Path, *, bot_id: str | None = None, language: str | None = None, source: str = ""
) -> BotDefinition:
    """Read and parse one bot file; the bot id defaults to the file's stem."""
    return load_bot_with_report(path, bot_id=bot_id, language=language, source=source).definition


def load_bot_with_report(
    path: Path,
    *,
    bot_id: str | None = None,
    language: str | None = None,
    source: str = "",
    conflicts: ConflictPolicy = DEFAULT_CONFLICT_POLICY,
) -> LoadedBot:
    """:func:`load_bot`, plus what was read and dropped."""
    fmt = format_for(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BotInputError("missing_file", f"{path}: no such file") from None
    except OSError as exc:
        raise BotInputError("unreadable_file", f"{path}: cannot read: {exc.strerror}") from None
    return parse_bot(
        data,
        fmt,
        name=str(path),
        bot_id=path.stem if bot_id is None else bot_id,
        language=language,
        source=source,
        conflicts=conflicts,
    )
