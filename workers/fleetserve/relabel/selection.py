"""Why a reply is worth a label: fallback, low confidence, small margin, shadow disagreement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

REASONS: Final = ("fallback", "low_confidence", "small_margin", "shadow_disagreement")


@dataclass(frozen=True)
class SelectionRules:
    """``below``: confidence strictly below this is low; ``margin``: a gap between the top
    two intents strictly below this is small."""

    below: float = 0.5
    margin: float = 0.1


@dataclass(frozen=True)
class Suggestion:
    intent: str
    score: float


def top_scores(reply: Mapping[str, Any]) -> list[Suggestion]:
    ranked = reply.get("top_k") or []
    return [
        Suggestion(str(entry["intent"]), float(entry["score"]))
        for entry in ranked
        if isinstance(entry, Mapping) and "intent" in entry and "score" in entry
    ]


def margin_of(suggestions: Sequence[Suggestion]) -> float:
    """Top score minus the second (the top score itself when there is no second)."""
    if not suggestions:
        return 0.0
    second = suggestions[1].score if len(suggestions) > 1 else 0.0
    return suggestions[0].score - second


def uncertainty(suggestions: Sequence[Suggestion]) -> float:
    """1 - margin: 1 when the model could not tell its top two intents apart."""
    return min(1.0, max(0.0, 1.0 - margin_of(suggestions)))


def reasons_for(reply: Mapping[str, Any], rules: SelectionRules) -> tuple[str, ...]:
    """The reasons (in :data:`REASONS` order) this reply is worth a label; empty if none."""
    found = []
    if reply.get("fallback") is True:
        found.append("fallback")
    confidence = reply.get("confidence")
    if isinstance(confidence, int | float) and confidence < rules.below:
        found.append("low_confidence")
    suggestions = top_scores(reply)
    if len(suggestions) > 1 and margin_of(suggestions) < rules.margin:
        found.append("small_margin")
    return tuple(found)
