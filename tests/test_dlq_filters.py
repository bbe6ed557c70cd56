"""The dead-letter filters and the parsing of times and durations: pure, no Kafka."""

from __future__ import annotations

from typing import Any

import pytest

from fleetserve.deadletters.operators.filters import (
    DeadLetterFilter,
    format_instant,
    parse_duration_ms,
    parse_instant_ms,
)
from support.dead_letters import HOUR_MS, dead_letter, query_record

NOW = 1_800_000_000_000


def letter(**overrides: Any) -> dict[str, Any]:
    record = query_record("alpha", topic="fleetserve.queries", partition=4, offset=9)
    value = dead_letter(record, "model_missing", group="real", at_ms=NOW, version="v1")
    value.update(overrides)
    return value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", 90 * 60_000),
        ("2h", 2 * HOUR_MS),
        ("7d", 7 * 24 * HOUR_MS),
        ("1w", 7 * 24 * HOUR_MS),
        ("30s", 30_000),
        ("1.5s", 1500),
        ("250ms", 250),
        (" 2h ", 2 * HOUR_MS),
    ],
)
def test_durations(text: str, expected: int) -> None:
    assert parse_duration_ms(text) == expected


@pytest.mark.parametrize("text", ["", "2", "h", "2 hours", "-1h", "0s", "0.0001ms", "1y"])
def test_bad_durations_say_what_works(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|shorter"):
        parse_duration_ms(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", NOW - 90 * 60_000),
        ("7d", NOW - 7 * 24 * HOUR_MS),
        ("2027-01-15T08:00:00Z", 1_800_000_000_000),
        ("2027-01-15T08:00:00+00:00", 1_800_000_000_000),
        ("2027-01-15T10:00:00+02:00", 1_800_000_000_000),
        ("2027-01-15T08:00:00", 1_800_000_000_000),  # no zone: UTC
        ("2027-01-15T08:00:00.250Z", 1_800_000_000_250),
        ("2027-01-15", 1_800_000_000_000 - 8 * HOUR_MS),
    ],
)
def test_instants_iso_or_ago(text: str, expected: int) -> None:
    assert parse_instant_ms(text, NOW) == expected


def test_bad_instant_names_both_forms() -> None:
    with pytest.raises(ValueError, match=r"ISO-8601.*duration"):
        parse_instant_ms("yesterday", NOW)


@pytest.mark.parametrize("text", ["1796100512345", "1796098902246", "17961005", "20250601"])
def test_epoch_milliseconds_and_basic_form_dates_are_refused(text: str) -> None:
    # datetime.fromisoformat reads 1796100512345 as 1796-10-05 23:45 (ISO basic form).
    with pytest.raises(ValueError, match=r"ISO-8601.*duration"):
        parse_instant_ms(text, NOW)


def test_format_instant_round_trips() -> None:
    assert format_instant(1_800_000_000_250) == "2027-01-15T08:00:00.250Z"
    assert parse_instant_ms(format_instant(1_800_000_000_250), 0) == 1_800_000_000_250
    assert format_instant(None) == "-"


def test_empty_filter_matches_everything() -> None:
    assert DeadLetterFilter().matches(letter())
    assert DeadLetterFilter().matches_unreadable(None)


@pytest.mark.parametrize(
    ("dl_filter", "matches"),
    [
        (DeadLetterFilter(reasons=frozenset({"model_missing"})), True),
        (DeadLetterFilter(reasons=frozenset({"unknown_bot", "model_missing"})), True),
        (DeadLetterFilter(reasons=frozenset({"unknown_bot"})), False),
        (DeadLetterFilter(bots=frozenset({"alpha"})), True),
        (DeadLetterFilter(bots=frozenset({"beta"})), False),
        (DeadLetterFilter(versions=frozenset({"v1", "v9"})), True),
        (DeadLetterFilter(versions=frozenset({"v2"})), False),
        (DeadLetterFilter(partitions=frozenset({4})), True),
        (DeadLetterFilter(partitions=frozenset({0, 1})), False),
        (DeadLetterFilter(source_topics=frozenset({"fleetserve.queries"})), True),
        (DeadLetterFilter(source_topics=frozenset({"other.queries"})), False),
        (DeadLetterFilter(groups=frozenset({"real"})), True),
        (DeadLetterFilter(groups=frozenset({"shadow-beta"})), False),
        (DeadLetterFilter(since_ms=NOW), True),  # inclusive
        (DeadLetterFilter(since_ms=NOW + 1), False),
        (DeadLetterFilter(until_ms=NOW + 1), True),
        (DeadLetterFilter(until_ms=NOW), False),  # exclusive
        (DeadLetterFilter(since_ms=NOW - HOUR_MS, until_ms=NOW + HOUR_MS), True),
        (DeadLetterFilter(bots=frozenset({"alpha"}), groups=frozenset({"shadow"})), False),
    ],
)
def test_each_filter(dl_filter: DeadLetterFilter, matches: bool) -> None:
    assert dl_filter.matches(letter()) is matches


def test_a_dead_letter_without_model_never_matches_a_version() -> None:
    assert not DeadLetterFilter(versions=frozenset({"v1"})).matches(letter(model=None))


def test_time_is_dead_lettered_at_not_first_failure() -> None:
    old_first_failure = letter(first_failed_at_ms=NOW - 10 * HOUR_MS)
    assert DeadLetterFilter(since_ms=NOW - HOUR_MS).matches(old_first_failure)


def test_unreadable_records_pass_only_time_filters() -> None:
    assert DeadLetterFilter(since_ms=NOW).matches_unreadable(NOW)
    assert not DeadLetterFilter(since_ms=NOW).matches_unreadable(NOW - 1)
    assert not DeadLetterFilter(since_ms=NOW).matches_unreadable(None)
    assert not DeadLetterFilter(bots=frozenset({"alpha"})).matches_unreadable(NOW)
    assert not DeadLetterFilter(groups=frozenset({"real"})).matches_unreadable(NOW)


def test_names_reason_only_when_explicit() -> None:
    assert DeadLetterFilter(reasons=frozenset({"decode"})).names_reason("decode")
    assert not DeadLetterFilter().names_reason("decode")


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="not before"):
        DeadLetterFilter(since_ms=NOW, until_ms=NOW)
