"""A bot file as PICO sees it: one item per distinct text, with every label it was given.

The loader refuses a text labelled two ways (``conflicting_labels``); cleaning is where
such contradictions are resolved, so this reads the rows itself and keeps them as votes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fleetserve.bots.loader import format_for
from fleetserve.bots.rows import BotFormat, Row, parse_rows
from fleetserve.bots.text import match_key
from fleetserve.errors import BotInputError

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BotItems:
    path: Path
    fmt: BotFormat
    intents: tuple[str, ...]
    texts: tuple[str, ...]  # each item's first spelling
    rows: tuple[tuple[Row, ...], ...]  # each item's rows, in file order
    votes: F64  # [items, intents]: how many rows gave the item each intent
    out_of_scope: tuple[Row, ...]

    @property
    def contradictory(self) -> npt.NDArray[np.bool_]:
        result: npt.NDArray[np.bool_] = (self.votes > 0).sum(axis=1) > 1
        return result


def read_bot_items(path: Path) -> BotItems:
    """Every labelled row of ``path`` grouped by text (case and compatibility forms folded)."""
    fmt = format_for(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BotInputError("unreadable_file", f"{path}: cannot read: {exc}") from None
    rows = parse_rows(data, fmt, str(path))
    labelled = [row for row in rows if row.intent is not None]
    intents = tuple(sorted({row.intent for row in labelled if row.intent is not None}))
    if len(intents) < 2:
        raise BotInputError("too_few_intents", f"{path}: cleaning needs at least 2 intents")
    index = {intent: i for i, intent in enumerate(intents)}
    grouped: dict[str, list[Row]] = {}
    for row in labelled:
        grouped.setdefault(match_key(row.text), []).append(row)
    votes = np.zeros((len(grouped), len(intents)))
    for item, group in enumerate(grouped.values()):
        for row in group:
            votes[item, index[str(row.intent)]] += 1.0
    return BotItems(
        path=path,
        fmt=fmt,
        intents=intents,
        texts=tuple(group[0].text for group in grouped.values()),
        rows=tuple(tuple(group) for group in grouped.values()),
        votes=votes,
        out_of_scope=tuple(row for row in rows if row.intent is None),
    )
