"""Compare a shadow deployment with the real one: join their replies and aggregate per bot.

Pure functions over already-read replies; :mod:`fleetserve.shadow.report` does the reading.
A shadow group (for example ``shadow-beta``) answers the same queries as the real group,
so the two replies to one query share the query's bot and request id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

JoinKey = tuple[str, str]
"""(bot_id, request_id): request ids are chosen by callers, so only unique per bot."""


@dataclass(frozen=True, slots=True)
class ReplyFacts:
    """The few fields of a reply v1 that the comparison needs (all a long read keeps)."""

    bot_id: str
    request_id: str
    intent: str
    confidence: float
    fallback: bool
    model_version: str

    @property
    def key(self) -> JoinKey:
        return (self.bot_id, self.request_id)


def reply_facts(record: Mapping[str, Any]) -> ReplyFacts | None:
    """The facts of a decoded reply, or None when a needed field is missing or mistyped.

    Deliberately lighter than the full contract check: a report reads days of replies.
    """
    model = record.get("model")
    confidence = record.get("confidence")
    facts = (
        record.get("bot_id"),
        record.get("request_id"),
        record.get("intent"),
        model.get("version") if isinstance(model, Mapping) else None,
    )
    if not all(isinstance(fact, str) for fact in facts):
        return None
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        return None
    fallback = record.get("fallback")
    if not isinstance(fallback, bool):
        return None
    bot_id, request_id, intent, version = (str(fact) for fact in facts)
    return ReplyFacts(bot_id, request_id, intent, float(confidence), fallback, version)


@dataclass(frozen=True, slots=True)
class JoinedPair:
    real: ReplyFacts
    shadow: ReplyFacts

    @property
    def agrees(self) -> bool:
        return self.real.intent == self.shadow.intent

    @property
    def confidence_delta(self) -> float:
        """Shadow minus real: positive when the shadow model is more sure of itself."""
        return self.shadow.confidence - self.real.confidence


@dataclass(frozen=True, slots=True)
class JoinResult:
    pairs: tuple[JoinedPair, ...]
    real_only: tuple[ReplyFacts, ...]
    shadow_only: tuple[ReplyFacts, ...]


def join_replies(real: Iterable[ReplyFacts], shadow: Iterable[ReplyFacts]) -> JoinResult:
    """Pair real and shadow replies by (bot, request id).

    A query answered twice on one side (a replayed query) counts once, with its last
    answer in read order, which is the one a caller would have seen last.
    """
    real_by_key = _last_by_key(real)
    shadow_by_key = _last_by_key(shadow)
    pairs = tuple(
        JoinedPair(reply, shadow_by_key[key])
        for key, reply in real_by_key.items()
        if key in shadow_by_key
    )
    return JoinResult(
        pairs=pairs,
        real_only=tuple(r for key, r in real_by_key.items() if key not in shadow_by_key),
        shadow_only=tuple(s for key, s in shadow_by_key.items() if key not in real_by_key),
    )


def _last_by_key(replies: Iterable[ReplyFacts]) -> dict[JoinKey, ReplyFacts]:
    by_key: dict[JoinKey, ReplyFacts] = {}
    for reply in replies:
        by_key.pop(reply.key, None)  # re-insert so order follows the last answer
        by_key[reply.key] = reply
    return by_key


@dataclass(frozen=True, slots=True)
class ShadowStats:
    """One bot's comparison (``bot_id`` None: every bot together).

    Rates and deltas are over joined pairs, so both sides are measured on the same
    queries; they are None when nothing joined. Versions are every model version seen
    on that side, matched or not.
    """

    bot_id: str | None
    joined: int
    agreed: int
    agreement_rate: float | None
    mean_confidence_delta: float | None
    mean_abs_confidence_delta: float | None
    max_abs_confidence_delta: float | None
    real_fallback_rate: float | None
    shadow_fallback_rate: float | None
    real_versions: tuple[str, ...]
    shadow_versions: tuple[str, ...]
    real_only: int
    shadow_only: int


@dataclass(frozen=True, slots=True)
class ShadowReport:
    bots: tuple[ShadowStats, ...]
    """One row per bot seen on either side, by bot id."""
    total: ShadowStats


def aggregate(result: JoinResult) -> ShadowReport:
    """Per-bot and total statistics of a join."""
    pairs_by_bot: dict[str, list[JoinedPair]] = defaultdict(list)
    real_only_by_bot: dict[str, list[ReplyFacts]] = defaultdict(list)
    shadow_only_by_bot: dict[str, list[ReplyFacts]] = defaultdict(list)
    for pair in result.pairs:
        pairs_by_bot[pair.real.bot_id].append(pair)
    for reply in result.real_only:
        real_only_by_bot[reply.bot_id].append(reply)
    for reply in result.shadow_only:
        shadow_only_by_bot[reply.bot_id].append(reply)
    bots = sorted(set(pairs_by_bot) | set(real_only_by_bot) | set(shadow_only_by_bot))
    rows = tuple(
        shadow_stats(bot, pairs_by_bot[bot], real_only_by_bot[bot], shadow_only_by_bot[bot])
        for bot in bots
    )
    total = shadow_stats(None, result.pairs, result.real_only, result.shadow_only)
    return ShadowReport(rows, total)


def shadow_stats(
    bot_id: str | None,
    pairs: Sequence[JoinedPair],
    real_only: Sequence[ReplyFacts],
    shadow_only: Sequence[ReplyFacts],
) -> ShadowStats:
    """The statistics of one group of pairs and unmatched replies."""
    deltas = [pair.confidence_delta for pair in pairs]
    absolute = [abs(delta) for delta in deltas]
    agreed = sum(pair.agrees for pair in pairs)
    return ShadowStats(
        bot_id=bot_id,
        joined=len(pairs),
        agreed=agreed,
        agreement_rate=_ratio(agreed, len(pairs)),
        mean_confidence_delta=_mean(deltas),
        mean_abs_confidence_delta=_mean(absolute),
        max_abs_confidence_delta=max(absolute) if absolute else None,
        real_fallback_rate=_ratio(sum(pair.real.fallback for pair in pairs), len(pairs)),
        shadow_fallback_rate=_ratio(sum(pair.shadow.fallback for pair in pairs), len(pairs)),
        real_versions=_versions([pair.real for pair in pairs], real_only),
        shadow_versions=_versions([pair.shadow for pair in pairs], shadow_only),
        real_only=len(real_only),
        shadow_only=len(shadow_only),
    )


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _versions(*groups: Iterable[ReplyFacts]) -> tuple[str, ...]:
    return tuple(sorted({reply.model_version for group in groups for reply in group}))
