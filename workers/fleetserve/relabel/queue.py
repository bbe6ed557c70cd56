"""Review entries: one per (bot, normalized text), merged idempotently by request id.

Ranking rule: ``priority = count x mean uncertainty``, where ``count`` is how many
distinct queries (request ids) asked this normalized text and ``uncertainty`` is
``1 - (top score - second score)`` of each reply (1 for a shadow disagreement). A label
on a text asked often and answered unsurely helps most: it fixes that many answers and
it sits where the model cannot separate its intents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from fleetserve.relabel.selection import Suggestion

Added = Literal["new", "repeat", "duplicate"]
SUGGESTIONS_SHOWN: Final = 3


@dataclass(frozen=True)
class Observation:
    """One selected reply, reduced to what a review entry keeps."""

    bot_id: str
    request_id: str
    key: str
    text: str
    reasons: tuple[str, ...]
    suggestions: tuple[Suggestion, ...]
    uncertainty: float
    model_version: str
    produced_at_ms: int


@dataclass
class ReviewEntry:
    bot_id: str
    key: str
    text: str
    count: int = 0
    request_ids: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    uncertainty_sum: float = 0.0
    score_sums: dict[str, float] = field(default_factory=dict)
    versions: list[str] = field(default_factory=list)
    first_seen_ms: int = 0
    last_seen_ms: int = 0
    cluster: int | None = None
    nearest_intent: str | None = None
    label: str | None = None
    decision: str | None = None

    @property
    def uncertainty(self) -> float:
        return self.uncertainty_sum / self.count if self.count else 0.0

    @property
    def priority(self) -> float:
        return self.count * self.uncertainty

    def suggestions(self) -> list[Suggestion]:
        """Mean score per intent the model ranked for this text, best first."""
        ranked = sorted(self.score_sums.items(), key=lambda kv: (-kv[1], kv[0]))
        return [Suggestion(i, s / self.count) for i, s in ranked[:SUGGESTIONS_SHOWN]]

    def add(self, observation: Observation) -> bool:
        """Fold one observation in; False (and nothing changes) for a request id already in."""
        if observation.request_id in self.request_ids:
            return False
        self.count += 1
        self.request_ids.append(observation.request_id)
        for reason in observation.reasons:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
        self.uncertainty_sum += observation.uncertainty
        for suggestion in observation.suggestions:
            self.score_sums[suggestion.intent] = (
                self.score_sums.get(suggestion.intent, 0.0) + suggestion.score
            )
        if observation.model_version not in self.versions:
            self.versions.append(observation.model_version)
        seen = observation.produced_at_ms
        self.first_seen_ms = min(self.first_seen_ms or seen, seen)
        self.last_seen_ms = max(self.last_seen_ms, seen)
        return True

    def accepted_label(self) -> str | None:
        """The reviewer's label, unless the entry was rejected."""
        if self.decision == "reject" or not self.label:
            return None
        return self.label

    def to_json(self) -> dict[str, Any]:
        return {
            "bot_id": self.bot_id,
            "key": self.key,
            "text": self.text,
            "count": self.count,
            "priority": round(self.priority, 6),
            "uncertainty": round(self.uncertainty, 6),
            "reasons": self.reasons,
            "suggestions": [
                {"intent": s.intent, "score": round(s.score, 6)} for s in self.suggestions()
            ],
            "cluster": self.cluster,
            "nearest_intent": self.nearest_intent,
            "label": self.label,
            "decision": self.decision,
            "request_ids": self.request_ids,
            "score_sums": self.score_sums,
            "uncertainty_sum": self.uncertainty_sum,
            "versions": self.versions,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
        }

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> ReviewEntry:
        return cls(
            bot_id=str(record["bot_id"]),
            key=str(record["key"]),
            text=str(record["text"]),
            count=int(record.get("count", 0)),
            request_ids=[str(r) for r in record.get("request_ids", [])],
            reasons={str(k): int(v) for k, v in (record.get("reasons") or {}).items()},
            uncertainty_sum=float(record.get("uncertainty_sum", 0.0)),
            score_sums={str(k): float(v) for k, v in (record.get("score_sums") or {}).items()},
            versions=[str(v) for v in record.get("versions", [])],
            first_seen_ms=int(record.get("first_seen_ms", 0)),
            last_seen_ms=int(record.get("last_seen_ms", 0)),
            cluster=record.get("cluster"),
            nearest_intent=record.get("nearest_intent"),
            label=record.get("label") or None,
            decision=record.get("decision") or None,
        )


def add_observation(entries: dict[str, ReviewEntry], observation: Observation) -> Added:
    """Merge into a bot's entries (keyed by normalized text)."""
    entry = entries.get(observation.key)
    if entry is None:
        entry = ReviewEntry(observation.bot_id, observation.key, observation.text)
        entries[observation.key] = entry
        entry.add(observation)
        return "new"
    return "repeat" if entry.add(observation) else "duplicate"


def ranked(entries: Iterable[ReviewEntry]) -> list[ReviewEntry]:
    """Most helpful label first (see the module docstring), ties by count then text."""
    return sorted(entries, key=lambda e: (-e.priority, -e.count, e.key))
