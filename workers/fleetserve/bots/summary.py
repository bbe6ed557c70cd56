"""Counts of a set of bots by kind and language, for reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from fleetserve.bots.definition import BotDefinition

USER_KIND: Final = "user"


@dataclass(frozen=True, slots=True)
class KindSummary:
    kind: str
    language: str
    bots: int
    intents: int
    utterances: int
    out_of_scope: int


def kind_of(source: str) -> str:
    """A bot's kind is its ``source`` up to the first ``:`` (``clinc150/subset``)."""
    return source.split(":", 1)[0] or USER_KIND


def summarize(bots: Iterable[BotDefinition]) -> list[KindSummary]:
    """Totals per (kind, language), sorted."""
    totals: dict[tuple[str, str], list[int]] = {}
    for bot in bots:
        row = totals.setdefault((kind_of(bot.source), bot.language), [0, 0, 0, 0])
        counts = (1, len(bot.intents()), len(bot.utterances), len(bot.out_of_scope))
        for position, value in enumerate(counts):
            row[position] += value
    return [KindSummary(kind, lang, *counts) for (kind, lang), counts in sorted(totals.items())]


def total(rows: Iterable[KindSummary]) -> KindSummary:
    """One row adding up ``rows``."""
    items = list(rows)
    return KindSummary(
        "total",
        "",
        sum(r.bots for r in items),
        sum(r.intents for r in items),
        sum(r.utterances for r in items),
        sum(r.out_of_scope for r in items),
    )
