"""Checked rows to a bot definition: drop duplicates, refuse contradictions and thin intents."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from fleetserve.bots.definition import BotDefinition, Utterance
from fleetserve.bots.rows import MAX_LISTED, Row
from fleetserve.bots.text import match_key
from fleetserve.errors import BotInputError

MIN_INTENTS: Final = 2
MIN_UTTERANCES_PER_INTENT: Final = 2
OUT_OF_SCOPE: Final = "out_of_scope"


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What loading one bot read and dropped."""

    name: str
    rows: int
    utterances: int
    out_of_scope: int
    intents: int
    duplicates_dropped: int


@dataclass(frozen=True, slots=True)
class LoadedBot:
    definition: BotDefinition
    report: LoadReport


def assemble(
    rows: Sequence[Row], *, name: str, bot_id: str, language: str, source: str = ""
) -> LoadedBot:
    """Build the definition from parsed rows; raises :class:`BotInputError` naming ``name``."""
    kept = _deduplicate(rows, name)
    utterances = tuple(Utterance(r.text, r.intent) for r in kept if r.intent is not None)
    out_of_scope = tuple(r.text for r in kept if r.intent is None)
    counts = Counter(u.intent for u in utterances)
    _check_intents(counts, kept, name)
    definition = BotDefinition(bot_id, language, utterances, out_of_scope, source)
    report = LoadReport(
        name=name,
        rows=len(rows),
        utterances=len(utterances),
        out_of_scope=len(out_of_scope),
        intents=len(counts),
        duplicates_dropped=len(rows) - len(kept),
    )
    return LoadedBot(definition, report)


def _deduplicate(rows: Sequence[Row], name: str) -> list[Row]:
    """First occurrence of each text; a text seen again under another label is a conflict."""
    first: dict[str, Row] = {}
    kept: list[Row] = []
    conflicts: list[tuple[Row, Row]] = []
    for row in rows:
        key = match_key(row.text)
        seen = first.get(key)
        if seen is None:
            first[key] = row
            kept.append(row)
        elif seen.intent != row.intent:
            conflicts.append((seen, row))
    if conflicts:
        raise _conflicting(name, conflicts)
    return kept


def _label(row: Row) -> str:
    return row.intent if row.intent is not None else OUT_OF_SCOPE


def _conflicting(name: str, conflicts: Sequence[tuple[Row, Row]]) -> BotInputError:
    listed = "; ".join(
        f"line {a.line} {a.text!r} is {_label(a)!r} but line {b.line} {b.text!r} is {_label(b)!r}"
        for a, b in conflicts[:MAX_LISTED]
    )
    more = f" (and {len(conflicts) - MAX_LISTED} more)" if len(conflicts) > MAX_LISTED else ""
    return BotInputError(
        "conflicting_labels",
        f"{name}:{conflicts[0][1].line}: the same text has two labels: {listed}{more}",
    )


def _check_intents(counts: Counter[str], rows: Sequence[Row], name: str) -> None:
    if len(counts) < MIN_INTENTS:
        found = ", ".join(sorted(counts)) or "none"
        raise BotInputError(
            "too_few_intents",
            f"{name}: a bot needs at least {MIN_INTENTS} intents; found {len(counts)} ({found})",
        )
    thin = sorted(intent for intent, n in counts.items() if n < MIN_UTTERANCES_PER_INTENT)
    if thin:
        line_of = {r.intent: r.line for r in rows if r.intent in thin}
        listed = ", ".join(f"{intent!r} (line {line_of[intent]})" for intent in thin)
        raise BotInputError(
            "single_utterance_intent",
            f"{name}:{line_of[thin[0]]}: every intent needs at least "
            f"{MIN_UTTERANCES_PER_INTENT} distinct utterances; only one for {listed}",
        )
