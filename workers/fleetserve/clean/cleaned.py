"""A PICO result over a bot file: the suspects, the counts, and the cleaned file."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from fleetserve.bots.assemble import MIN_UTTERANCES_PER_INTENT
from fleetserve.bots.rows import BotFormat
from fleetserve.clean.botdata import BotItems
from fleetserve.clean.pico import PicoResult


@dataclass(frozen=True)
class Suspect:
    line: int
    text: str
    label: str
    p_label: float
    proposed: str
    p_proposed: float
    observed: dict[str, int]  # every label the text was given, with its count

    @property
    def contradictory(self) -> bool:
        return len(self.observed) > 1


@dataclass(frozen=True)
class Change:
    """One item's label in the cleaned file, when it differs from what a reader saw."""

    item: int
    was: str
    now: str
    posterior: float


def suspects(items: BotItems, result: PicoResult) -> list[Suspect]:
    """Items whose own label is less likely than not, plus every contradictory one."""
    chosen = list(result.suspects())
    chosen += [i for i in np.flatnonzero(items.contradictory) if i not in set(chosen)]
    return [_suspect(items, result, int(i)) for i in chosen]


def changes(items: BotItems, result: PicoResult, threshold: float) -> list[Change]:
    """The labels a cleaned file changes: a proposal at or above ``threshold``, and every
    contradiction resolved (to the proposal, else to the majority label). A change that
    would leave an intent with fewer utterances than a bot needs is held back."""
    counts = Counter(items.intents[i] for i in result.initial)
    planned: list[Change] = []
    for item in range(len(items.texts)):
        initial = int(result.initial[item])
        proposed = int(result.proposed[item])
        p_proposed = float(result.posterior[item, proposed])
        target = proposed if proposed != initial and p_proposed >= threshold else initial
        if target != initial or items.contradictory[item]:
            was = "/".join(_observed(items, item))
            planned.append(Change(item, was, items.intents[target], p_proposed))
    kept: list[Change] = []
    for change in sorted(planned, key=lambda c: -c.posterior):
        initial_intent = items.intents[int(result.initial[change.item])]
        if change.now != initial_intent:
            if counts[initial_intent] <= MIN_UTTERANCES_PER_INTENT:
                continue
            counts[initial_intent] -= 1
            counts[change.now] += 1
        kept.append(change)
    return sorted(kept, key=lambda c: c.item)


def summary(
    items: BotItems, result: PicoResult, threshold: float, planned: list[Change]
) -> dict[str, Any]:
    last = result.rounds[-1]
    return {
        "bot_file": str(items.path),
        "rows": int(items.votes.sum()) + len(items.out_of_scope),
        "texts": len(items.texts),
        "intents": len(items.intents),
        "out_of_scope_rows": len(items.out_of_scope),
        "duplicate_rows": int(items.votes.sum()) - len(items.texts),
        "contradictory_texts": int(items.contradictory.sum()),
        "suspects": int(result.suspects().size),
        "threshold": threshold,
        "relabelled": sum(c.now != items.intents[int(result.initial[c.item])] for c in planned),
        "noise_family": last.family,
        "estimated_noise_rate": round(last.noise_rate, 4),
        "rounds": len(result.rounds),
        "stop_reason": result.stop_reason,
    }


def cleaned_file(items: BotItems, result: PicoResult, planned: list[Change]) -> bytes:
    """One row per distinct text with its cleaned label, then the out-of-scope rows.

    JSONL rows that changed carry ``"provenance"`` (the label they had and the posterior
    of the new one); CSV keeps to ``text,intent``.
    """
    by_item = {change.item: change for change in planned}
    rows: list[tuple[str, str | None, dict[str, Any] | None]] = []
    for item, text in enumerate(items.texts):
        change = by_item.get(item)
        if change is None:
            rows.append((text, items.intents[int(result.initial[item])], None))
        else:
            provenance = {
                "via": "clean",
                "was": change.was,
                "posterior": round(change.posterior, 4),
            }
            rows.append((text, change.now, provenance))
    rows += [(row.text, None, None) for row in items.out_of_scope]
    return _encode_jsonl(rows) if items.fmt is BotFormat.JSONL else _encode_csv(rows)


def _encode_jsonl(rows: list[tuple[str, str | None, dict[str, Any] | None]]) -> bytes:
    out = io.BytesIO()
    for text, intent, provenance in rows:
        record: dict[str, Any] = {"text": text}
        if intent is None:
            record["out_of_scope"] = True
        else:
            record["intent"] = intent
        if provenance is not None:
            record["provenance"] = provenance
        out.write(orjson.dumps(record) + b"\n")
    return out.getvalue()


def _encode_csv(rows: list[tuple[str, str | None, dict[str, Any] | None]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "intent"])
    for text, intent, _ in rows:
        writer.writerow([text, intent or ""])
    return out.getvalue().encode()


def _observed(items: BotItems, item: int) -> list[str]:
    return [items.intents[i] for i in np.flatnonzero(items.votes[item])]


def _suspect(items: BotItems, result: PicoResult, item: int) -> Suspect:
    initial = int(result.initial[item])
    proposed = int(result.proposed[item])
    observed = {
        items.intents[i]: int(items.votes[item, i]) for i in np.flatnonzero(items.votes[item])
    }
    return Suspect(
        line=items.rows[item][0].line,
        text=items.texts[item],
        label=items.intents[initial],
        p_label=float(result.posterior[item, initial]),
        proposed=items.intents[proposed],
        p_proposed=float(result.posterior[item, proposed]),
        observed=observed,
    )
