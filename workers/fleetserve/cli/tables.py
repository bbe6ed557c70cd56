"""Plain aligned text tables for terminal output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def format_table(columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> str:
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [_line(columns, widths)] + [_line(r, widths) for r in cells]
    return "\n".join(lines)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(
        value.ljust(width) for value, width in zip(values, widths, strict=True)
    ).rstrip()
