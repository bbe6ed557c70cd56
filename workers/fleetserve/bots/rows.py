"""Bytes of a JSONL or CSV bot file to numbered rows; every malformed line is collected."""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from fleetserve.bots.text import normalize_text
from fleetserve.errors import BotInputError

# How many bad lines one error message names before it only counts the rest.
MAX_LISTED: Final = 5
_BOM: Final = "\ufeff"


class BotFormat(enum.Enum):
    JSONL = "jsonl"
    CSV = "csv"


SUFFIXES: Final = {".jsonl": BotFormat.JSONL, ".ndjson": BotFormat.JSONL, ".csv": BotFormat.CSV}


@dataclass(frozen=True, slots=True)
class Row:
    """One example as read: its 1-based line, text, and intent (None = out of scope)."""

    line: int
    text: str
    intent: str | None


@dataclass(frozen=True, slots=True)
class _Malformed:
    line: int
    detail: str


@dataclass(frozen=True, slots=True)
class _Problem:
    detail: str


def parse_rows(data: bytes, fmt: BotFormat, name: str) -> list[Row]:
    """Every example in ``data``; raises :class:`BotInputError` naming ``name`` and the line."""
    text = decode_utf8(data, name)
    rows: list[Row] = []
    bad: list[_Malformed] = []
    parsed = _jsonl(text) if fmt is BotFormat.JSONL else _csv(text)
    for item in parsed:
        if isinstance(item, Row):
            rows.append(item)
        else:
            bad.append(item)
    if bad:
        raise malformed(name, bad)
    if not rows:
        raise BotInputError("empty_file", f"{name}: no utterances in the file")
    return rows


def decode_utf8(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BotInputError(
            "not_utf8",
            f"{name}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save the file as UTF-8",
        ) from None
    # Spreadsheet exports often start with a byte-order mark.
    return text.removeprefix(_BOM)


def malformed(name: str, bad: Sequence[_Malformed]) -> BotInputError:
    first = bad[0]
    message = f"{name}:{first.line}: {first.detail}"
    if len(bad) > 1:
        others = ", ".join(str(b.line) for b in bad[1:MAX_LISTED])
        more = f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        message += f" (also malformed: line {others}{more})"
    return BotInputError("malformed_row", message)


def _jsonl(text: str) -> Iterator[Row | _Malformed]:
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield _jsonl_row(number, line)


def _jsonl_row(number: int, line: str) -> Row | _Malformed:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return _Malformed(number, f"not valid JSON ({exc})")
    if not isinstance(record, dict):
        return _Malformed(number, f"expected a JSON object, got {type(record).__name__}")
    text = _text_of(record.get("text"))
    if isinstance(text, _Problem):
        return _Malformed(number, text.detail)
    label = _label_of(record)
    if isinstance(label, _Problem):
        return _Malformed(number, label.detail)
    return Row(number, text, label)


def _label_of(record: dict[str, object]) -> str | _Problem | None:
    """The intent, None for an out-of-scope row, or what is wrong."""
    out_of_scope = record.get("out_of_scope", False)
    if not isinstance(out_of_scope, bool):
        return _Problem("'out_of_scope' must be true or false")
    intent = record.get("intent")
    if out_of_scope:
        return None if intent is None else _Problem("an out-of-scope row must not have an 'intent'")
    label = normalize_text(intent) if isinstance(intent, str) else ""
    return label or _Problem("'intent' must be a non-empty string (or set \"out_of_scope\": true)")


def _text_of(value: object) -> str | _Problem:
    if not isinstance(value, str):
        return _Problem("'text' must be a string" if value is not None else "'text' is missing")
    text = normalize_text(value)
    return text if text else _Problem("'text' is empty")


def _csv(text: str) -> Iterator[Row | _Malformed]:
    reader = csv.reader(io.StringIO(text, newline=""))
    columns: dict[str, int] | None = None
    start = 1
    try:
        for cells in reader:
            number, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if columns is None:
                columns = _header(cells)
                if columns is None:
                    yield _Malformed(number, f"expected a header 'text,intent', got {cells!r}")
                    return
                continue
            yield _csv_row(number, cells, columns)
    except csv.Error as exc:
        yield _Malformed(reader.line_num, f"not valid CSV ({exc})")


def _header(cells: list[str]) -> dict[str, int] | None:
    names = [cell.strip().lower() for cell in cells]
    if "text" not in names or "intent" not in names or len(set(names)) != len(names):
        return None
    return {name: index for index, name in enumerate(names)}


def _csv_row(number: int, cells: list[str], columns: dict[str, int]) -> Row | _Malformed:
    if len(cells) != len(columns):
        return _Malformed(number, f"expected {len(columns)} fields, got {len(cells)}")
    text = _text_of(cells[columns["text"]])
    if isinstance(text, _Problem):
        return _Malformed(number, text.detail)
    # An empty intent cell is how a spreadsheet marks an out-of-scope example.
    intent = normalize_text(cells[columns["intent"]])
    return Row(number, text, intent or None)
