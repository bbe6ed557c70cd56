"""The filters every `fleetserve dlq` command shares: its options, parsed into a filter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import click

from fleetserve.core.clock import now_ms
from fleetserve.deadletters import reasons
from fleetserve.deadletters.operators.filters import (
    DeadLetterFilter,
    parse_duration_ms,
    parse_instant_ms,
)
from fleetserve.deadletters.operators.records import DeadLetterRecord

F = TypeVar("F", bound=Callable[..., Any])

REASONS: Final = reasons.ALL


def duration_callback(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def instant_callback(_ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_instant_ms(value, now_ms())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


_FILTER_OPTIONS: Final = (
    click.option(
        "--reason",
        "reasons",
        multiple=True,
        type=click.Choice(REASONS),
        metavar="REASON",
        help=f"Only dead letters with this reason code (repeatable): {', '.join(REASONS)}. "
        "For replay, naming decode, schema or too_large also opts in to replaying that "
        "malformed input.",
    ),
    click.option(
        "--bot", "bots", multiple=True, metavar="BOT", help="Only this bot's (repeatable)."
    ),
    click.option(
        "--version",
        "versions",
        multiple=True,
        metavar="V",
        help="Only those that involved model version V (repeatable); a dead letter from "
        "before a model was chosen (decode, unknown_bot, ...) has no version.",
    ),
    click.option(
        "--since",
        callback=instant_callback,
        metavar="T",
        help="Only those dead-lettered at or after T: an ISO-8601 time "
        "(2025-06-01T10:00:00Z; no zone means UTC) or a duration ago (90m, 2h, 7d). "
        "Reading skips ahead to T by record timestamp where the broker supports it.",
    ),
    click.option(
        "--until",
        callback=instant_callback,
        metavar="T",
        help="Only those dead-lettered before T (same forms as --since).",
    ),
    click.option(
        "--partition",
        "partitions",
        multiple=True,
        type=click.IntRange(0),
        metavar="P",
        help="Only queries originally read from partition P of their source topic "
        "(repeatable; not the dead-letter topic's partition).",
    ),
    click.option(
        "--source-topic",
        "source_topics",
        multiple=True,
        metavar="TOPIC",
        help="Only queries originally read from TOPIC (repeatable).",
    ),
    click.option(
        "--group",
        "groups",
        multiple=True,
        metavar="G",
        help="Only those dead-lettered by consumer group G (repeatable), e.g. the real "
        "group, to leave a shadow group's dead letters out.",
    ),
)


def filter_options(fn: F) -> F:
    for option in reversed(_FILTER_OPTIONS):
        fn = option(fn)
    return fn


def build_filter(options: dict[str, Any]) -> DeadLetterFilter:
    try:
        return DeadLetterFilter(
            reasons=frozenset(options["reasons"]),
            bots=frozenset(options["bots"]),
            versions=frozenset(options["versions"]),
            since_ms=options["since"],
            until_ms=options["until"],
            partitions=frozenset(options["partitions"]),
            source_topics=frozenset(options["source_topics"]),
            groups=frozenset(options["groups"]),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since/--until") from None


def selected(item: DeadLetterRecord, dl_filter: DeadLetterFilter) -> bool:
    if item.dead_letter is None:
        return dl_filter.matches_unreadable(item.record.timestamp_ms)
    return dl_filter.matches(item.dead_letter)
