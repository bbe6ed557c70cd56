"""Which dead letters an operator means: pure predicates and the parsing of times and durations.

Shared by ``dlq list``, ``stats`` and ``replay`` so that the same flags select the same
dead letters everywhere. Nothing here touches Kafka or the clock: ``now_ms`` is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
# Python also reads ISO-8601's basic form (20250601), so epoch milliseconds such as
# 1796100512345 would pass as a date in 1796: only the extended YYYY-MM-DD form is taken.
_EXTENDED_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]|$)")
_UNIT_MS: Final = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}


def parse_duration_ms(text: str) -> int:
    """``90m``, ``2h``, ``7d``, ``1.5s``, ``250ms``, ``1w`` as milliseconds (at least 1).

    Raises ValueError naming the accepted forms.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration; use a number and a unit: ms, s, m, h, d or w "
            "(e.g. 90m, 2h, 7d)"
        )
    milliseconds = round(float(match.group(1)) * _UNIT_MS[match.group(2)])
    if milliseconds < 1:
        raise ValueError(f"{text!r} is shorter than a millisecond")
    return milliseconds


def parse_instant_ms(text: str, now_ms: int) -> int:
    """An ISO-8601 time (``2025-06-01``, ``2025-06-01T10:00:00Z``, ``...+02:00``; no zone
    means UTC) or a duration meaning that long before ``now_ms``, as epoch milliseconds."""
    try:
        return now_ms - parse_duration_ms(text)
    except ValueError:
        pass
    try:
        if not _EXTENDED_DATE.match(text.strip()):
            raise ValueError(text)
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO-8601 time (2025-06-01T10:00:00Z) nor a duration "
            "ago (90m, 2h, 7d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def format_instant(epoch_ms: int | None) -> str:
    """Epoch milliseconds as ``2025-06-01T10:00:00.123Z``; ``-`` when unknown."""
    if epoch_ms is None:
        return "-"
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Keep a dead letter only if it passes every condition that is set.

    A set of values matches any one of them (empty: no condition). ``since_ms`` is
    inclusive and ``until_ms`` exclusive, both compared with ``dead_lettered_at_ms``.
    ``partitions`` and ``source_topics`` are about the original query (``source``),
    ``groups`` the consumer group whose worker dead-lettered it, ``versions`` the model
    version involved (a dead letter from before a model was chosen has none and never
    matches a version).
    """

    reasons: frozenset[str] = frozenset()
    bots: frozenset[str] = frozenset()
    versions: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None
    partitions: frozenset[int] = frozenset()
    source_topics: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        since, until = self.since_ms, self.until_ms
        if since is not None and until is not None and since >= until:
            raise ValueError(
                f"--since {format_instant(since)} is not before --until {format_instant(until)}"
            )

    @property
    def selects_by_content(self) -> bool:
        """Whether any condition needs the decoded dead letter (all but the time window)."""
        return bool(
            self.reasons
            or self.bots
            or self.versions
            or self.partitions
            or self.source_topics
            or self.groups
        )

    def names_reason(self, reason: object) -> bool:
        """Whether ``--reason`` named this reason explicitly (not merely let everything in)."""
        return reason in self.reasons

    def matches(self, dead_letter: Mapping[str, Any]) -> bool:
        """Whether a decoded dead letter v1 passes; a missing field fails its condition."""
        source = dead_letter.get("source") or {}
        model = dead_letter.get("model") or {}
        return (
            _within(self.reasons, dead_letter.get("reason"))
            and _within(self.bots, dead_letter.get("bot_id"))
            and _within(self.versions, model.get("version"))
            and _within(self.partitions, source.get("partition"))
            and _within(self.source_topics, source.get("topic"))
            and _within(self.groups, source.get("consumer_group"))
            and self.in_window(dead_letter.get("dead_lettered_at_ms"))
        )

    def matches_unreadable(self, timestamp_ms: int | None) -> bool:
        """Whether a record that is not a dead letter v1 passes.

        Nothing of its content can be trusted, so any content condition excludes it; the
        time window is checked against the record's Kafka timestamp instead.
        """
        if self.selects_by_content:
            return False
        if self.since_ms is None and self.until_ms is None:
            return True
        return self.in_window(timestamp_ms)

    def in_window(self, epoch_ms: object) -> bool:
        if self.since_ms is None and self.until_ms is None:
            return True
        if not isinstance(epoch_ms, int) or isinstance(epoch_ms, bool):
            return False
        if self.since_ms is not None and epoch_ms < self.since_ms:
            return False
        return self.until_ms is None or epoch_ms < self.until_ms


def _within(allowed: frozenset[Any], value: object) -> bool:
    return not allowed or value in allowed
