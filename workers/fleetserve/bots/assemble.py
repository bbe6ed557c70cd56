"""Checked rows to a bot definition: drop duplicates, resolve contradictions, refuse thin intents.

The same text under two labels (intents, or an intent and out-of-scope) is resolved by a
policy and reported, so one slip in a large file does not stop the bot from building:

- ``majority`` (default): the label the text carries most often wins; a tie drops the text;
- ``first``: the label of its first occurrence wins;
- ``drop``: the text is dropped under every label;
- ``fail``: the bot fails with ``conflicting_labels`` (the behaviour before policies).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from fleetserve.bots.definition import BotDefinition, Utterance
from fleetserve.bots.rows import MAX_LISTED, Row
from fleetserve.bots.text import match_key
from fleetserve.errors import BotInputError

MIN_INTENTS: Final = 2
MIN_UTTERANCES_PER_INTENT: Final = 2
OUT_OF_SCOPE: Final = "out_of_scope"
ConflictPolicy = Literal["majority", "first", "drop", "fail"]
CONFLICT_POLICIES: Final[tuple[ConflictPolicy, ...]] = ("majority", "first", "drop", "fail")
DEFAULT_CONFLICT_POLICY: Final[ConflictPolicy] = "majority"


@dataclass(frozen=True, slots=True)
class Conflict:
    """One text seen under several labels, and what the policy kept (None: dropped)."""

    text: str
    lines: tuple[int, ...]
    labels: tuple[str, ...]  # in line order; out-of-scope is "out_of_scope"
    kept: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "lines": list(self.lines),
            "labels": list(self.labels),
            "kept": self.kept,
        }


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What loading one bot read and dropped."""

    name: str
    rows: int
    utterances: int
    out_of_scope: int
    intents: int
    duplicates_dropped: int
    conflicts: tuple[Conflict, ...] = ()
    conflict_policy: ConflictPolicy = DEFAULT_CONFLICT_POLICY


@dataclass(frozen=True, slots=True)
class LoadedBot:
    definition: BotDefinition
    report: LoadReport


def assemble(
    rows: Sequence[Row],
    *,
    name: str,
    bot_id: str,
    language: str,
    source: str = "",
    conflicts: ConflictPolicy = DEFAULT_CONFLICT_POLICY,
) -> LoadedBot:
    """Build the definition from parsed rows; raises :class:`BotInputError` naming ``name``."""
    kept, resolved = _deduplicate(rows, name, conflicts)
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
        conflicts=tuple(resolved),
        conflict_policy=conflicts,
    )
    return LoadedBot(definition, report)


def _deduplicate(
    rows: Sequence[Row], name: str, policy: ConflictPolicy
) -> tuple[list[Row], list[Conflict]]:
    """One row per text; a text seen under several labels is resolved by ``policy``."""
    by_key: dict[str, list[Row]] = {}
    for row in rows:
        by_key.setdefault(match_key(row.text), []).append(row)
    contradicted = [group for group in by_key.values() if len({r.intent for r in group}) > 1]
    if contradicted and policy == "fail":
        pairs = [(g[0], next(r for r in g if r.intent != g[0].intent)) for g in contradicted]
        raise _conflicting(name, pairs)
    kept_row: dict[str, Row | None] = {}
    resolved: list[Conflict] = []
    for group in contradicted:
        winner = _resolve(group, policy)
        kept_row[match_key(group[0].text)] = winner
        resolved.append(
            Conflict(
                group[0].text,
                tuple(r.line for r in group),
                tuple(_label(r) for r in group),
                None if winner is None else _label(winner),
            )
        )
    kept: list[Row] = []
    for key, group in by_key.items():
        chosen = kept_row[key] if key in kept_row else group[0]
        if chosen is not None:
            kept.append(chosen)
    kept.sort(key=lambda r: r.line)
    return kept, resolved


def _resolve(group: Sequence[Row], policy: ConflictPolicy) -> Row | None:
    if policy == "first":
        return group[0]
    if policy == "drop":
        return None
    votes = Counter(r.intent for r in group).most_common()
    if len(votes) > 1 and votes[0][1] == votes[1][1]:
        return None  # no majority: keeping either label would be a guess
    return next(r for r in group if r.intent == votes[0][0])


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
