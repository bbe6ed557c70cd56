"""The pure core of `relabel collect`: decoded replies in, review entries and counts out.

Kept apart from the Kafka loop (:mod:`fleetserve.relabel.collect`) so every rule is
tested without a broker. With a shadow topic, a real reply that no other rule selects
waits for its shadow twin (same bot and request id); the pair is a disagreement when
their intents differ. Waiting replies hold back the committed offset of their
partition, so a crash never loses a join; they are let go once the other topic has
moved ``join_window_ms`` past them (event time), or when a bounded run ends.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetserve.relabel.queue import Observation, ReviewEntry, add_observation
from fleetserve.relabel.selection import SelectionRules, reasons_for, top_scores, uncertainty
from fleetserve.relabel.textnoise import DEFAULT_MAX_CHARS, noise_reason, review_key

Where = tuple[str, int, int]  # topic, partition, offset
JoinKey = tuple[str, str]  # bot, request id


@dataclass(frozen=True)
class IntakeRules:
    selection: SelectionRules = field(default_factory=SelectionRules)
    max_chars: int = DEFAULT_MAX_CHARS
    bots: frozenset[str] = frozenset()
    with_shadow: bool = False
    join_window_ms: int = 60_000


@dataclass
class _Waiting:
    reply: Mapping[str, Any]
    where: Where
    produced_at_ms: int


class Intake:
    """Per-bot entries (loaded on first use), counts, and the shadow joins in flight."""

    def __init__(
        self,
        rules: IntakeRules,
        load_entries: Callable[[str], dict[str, ReviewEntry]],
        training_keys: Callable[[str], frozenset[str]],
    ) -> None:
        self.rules = rules
        self._load_entries = load_entries
        self._training_keys = training_keys
        self.entries: dict[str, dict[str, ReviewEntry]] = {}
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.dirty: set[str] = set()
        self._real: dict[JoinKey, _Waiting] = {}
        self._shadow: dict[JoinKey, _Waiting] = {}
        self._latest_ms = {"real": 0, "shadow": 0}

    def on_real(self, reply: Mapping[str, Any], where: Where) -> None:
        bot = str(reply["bot_id"])
        if self.rules.bots and bot not in self.rules.bots:
            self.counts["*"]["other_bots"] += 1
            return
        self.counts[bot]["replies"] += 1
        self._latest_ms["real"] = max(self._latest_ms["real"], _produced(reply))
        reasons = reasons_for(reply, self.rules.selection)
        if self.rules.with_shadow:
            key = (bot, str(reply["request_id"]))
            twin = self._shadow.pop(key, None)
            if twin is not None:
                reasons += self._compare(bot, reply, twin.reply)
            elif not reasons:
                self._real[key] = _Waiting(reply, where, _produced(reply))
                return
        self._consider(bot, reply, reasons)

    def on_shadow(self, reply: Mapping[str, Any], where: Where) -> None:
        bot = str(reply["bot_id"])
        if self.rules.bots and bot not in self.rules.bots:
            return
        self.counts[bot]["shadow_replies"] += 1
        self._latest_ms["shadow"] = max(self._latest_ms["shadow"], _produced(reply))
        key = (bot, str(reply["request_id"]))
        waiting = self._real.pop(key, None)
        if waiting is None:
            self._shadow[key] = _Waiting(reply, where, _produced(reply))
            return
        self._consider(bot, waiting.reply, self._compare(bot, waiting.reply, reply))

    def count_invalid(self) -> None:
        self.counts["*"]["invalid"] += 1

    def release(self, *, everything: bool = False) -> None:
        """Stop waiting for twins that are ``join_window_ms`` behind the other topic."""
        window = self.rules.join_window_ms
        for key, waiting in list(self._real.items()):
            if everything or waiting.produced_at_ms + window < self._latest_ms["shadow"]:
                del self._real[key]
                self.counts[key[0]]["shadow_unmatched"] += 1
                self._consider(key[0], waiting.reply, ())
        for key, waiting in list(self._shadow.items()):
            if everything or waiting.produced_at_ms + window < self._latest_ms["real"]:
                del self._shadow[key]
                self.counts[key[0]]["shadow_unmatched"] += 1

    def held_back(self) -> dict[tuple[str, int], int]:
        """Per partition, the lowest offset still waiting for its twin."""
        lowest: dict[tuple[str, int], int] = {}
        for waiting in (*self._real.values(), *self._shadow.values()):
            topic, partition, offset = waiting.where
            lowest[(topic, partition)] = min(offset, lowest.get((topic, partition), offset))
        return lowest

    def bot_entries(self, bot: str) -> dict[str, ReviewEntry]:
        if bot not in self.entries:
            self.entries[bot] = self._load_entries(bot)
        return self.entries[bot]

    def _compare(
        self, bot: str, real: Mapping[str, Any], shadow: Mapping[str, Any]
    ) -> tuple[str, ...]:
        self.counts[bot]["shadow_joined"] += 1
        if real.get("intent") == shadow.get("intent"):
            return ()
        self.counts[bot]["shadow_disagreements"] += 1
        return ("shadow_disagreement",)

    def _consider(self, bot: str, reply: Mapping[str, Any], reasons: tuple[str, ...]) -> None:
        counts = self.counts[bot]
        if not reasons:
            counts["not_selected"] += 1
            return
        counts["selected"] += 1
        text = reply.get("text")
        if not isinstance(text, str):
            counts["text_off"] += 1
            return
        noise = noise_reason(text, self._training_keys(bot), self.rules.max_chars)
        if noise is not None:
            counts[f"noise_{noise}"] += 1
            return
        suggestions = tuple(top_scores(reply))
        disagreement = "shadow_disagreement" in reasons
        observation = Observation(
            bot_id=bot,
            request_id=str(reply["request_id"]),
            key=review_key(text),
            text=text,
            reasons=reasons,
            suggestions=suggestions,
            uncertainty=1.0 if disagreement else uncertainty(suggestions),
            model_version=str((reply.get("model") or {}).get("version", "")),
            produced_at_ms=_produced(reply),
        )
        added = add_observation(self.bot_entries(bot), observation)
        counts[f"collected_{added}"] += 1
        if added != "duplicate":
            self.dirty.add(bot)


def _produced(reply: Mapping[str, Any]) -> int:
    value = reply.get("produced_at_ms")
    return int(value) if isinstance(value, int) else 0
