"""Reading replies back for relabeling: the pure filter, and `fleetserve replies tail` against
the real broker (filters, --limit, --idle-exit, and a --group run resuming the last one)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from confluent_kafka import Producer

from fleetserve.cli.main import cli
from fleetserve.cli.replies_cmd import reply_line
from fleetserve.contracts.codec import encode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.replies.filters import ReplyFilter
from support.builders import reply_value

SHA = "d" * 64
# A group join on Tansu takes about half the session timeout, so keep it short; Apache
# Kafka (FLEETSERVE_BOOTSTRAP) refuses one under its group.min.session.timeout.ms of 6 s.
SESSION_MS = "6000" if os.environ.get("FLEETSERVE_BOOTSTRAP") else "2000"
SHORT_SESSION = (
    "--kafka-option",
    f"session.timeout.ms={SESSION_MS}",
    "--kafka-option",
    "heartbeat.interval.ms=500",
)


def reply(
    bot_id: str,
    confidence: float,
    *,
    request_id: str | None = None,
    fallback: bool = False,
    stage: str = "real",
) -> dict[str, Any]:
    return reply_value(
        bot_id,
        request_id=request_id or uuid.uuid4().hex,
        confidence=confidence,
        fallback=fallback,
        stage=stage,
        version="v7",
    )


# -- ReplyFilter: pure ------------------------------------------------------------------------


def test_an_empty_filter_keeps_everything() -> None:
    assert ReplyFilter().matches(reply("a", 0.0))
    assert ReplyFilter().matches({})


def test_filter_by_bot_stage_and_fallback() -> None:
    only_ab = ReplyFilter(bots=frozenset({"a", "b"}))
    assert only_ab.matches(reply("a", 0.5))
    assert only_ab.matches(reply("b", 0.5))
    assert not only_ab.matches(reply("c", 0.5))
    assert ReplyFilter(stage="beta").matches(reply("a", 0.5, stage="beta"))
    assert not ReplyFilter(stage="beta").matches(reply("a", 0.5))
    assert ReplyFilter(fallback_only=True).matches(reply("a", 0.2, fallback=True))
    assert not ReplyFilter(fallback_only=True).matches(reply("a", 0.2))


def test_confidence_bounds_are_strict_so_below_and_above_do_not_overlap() -> None:
    below = ReplyFilter(max_confidence=0.5)
    above = ReplyFilter(min_confidence=0.5)
    assert below.matches(reply("a", 0.49))
    assert not below.matches(reply("a", 0.5))
    assert above.matches(reply("a", 0.51))
    assert not above.matches(reply("a", 0.5))
    band = ReplyFilter(min_confidence=0.2, max_confidence=0.6)
    assert [band.matches(reply("a", c)) for c in (0.1, 0.3, 0.7)] == [False, True, False]


def test_a_bound_rejects_replies_without_a_number() -> None:
    bounded = ReplyFilter(max_confidence=0.5)
    assert not bounded.matches({"bot_id": "a"})
    assert not bounded.matches({**reply("a", 0.1), "confidence": True})
    assert not bounded.matches({**reply("a", 0.1), "confidence": "0.1"})


def test_all_conditions_together() -> None:
    wanted = ReplyFilter(
        bots=frozenset({"a"}), max_confidence=0.4, fallback_only=True, stage="real"
    )
    assert wanted.matches(reply("a", 0.3, fallback=True))
    assert not wanted.matches(reply("a", 0.3))
    assert not wanted.matches(reply("b", 0.3, fallback=True))
    assert not wanted.matches(reply("a", 0.45, fallback=True))


@pytest.mark.parametrize(("low", "high"), [(-0.1, None), (None, 1.5), (0.6, 0.6), (0.7, 0.6)])
def test_impossible_bounds_are_refused(low: float | None, high: float | None) -> None:
    with pytest.raises(ValueError, match=r"confidence|below"):
        ReplyFilter(min_confidence=low, max_confidence=high)


def test_text_line_is_compact_and_quotes_the_text() -> None:
    line = reply_line(reply("a", 0.12345, request_id="r-9", fallback=True))
    assert line.split("  ") == [
        "a",
        "real",
        "fallback",
        "0.123",
        "fallback",
        "v7/int8",
        "r-9",
        '"a flight to Jeju"',
    ]
    assert reply_line({**reply("a", 0.5), "text": None}).endswith("(text off)")


# -- `fleetserve replies tail` against the real broker ---------------------------------------


def tail(bootstrap: str, prefix: str, *args: str) -> Result:
    started = time.monotonic()
    result = CliRunner().invoke(
        cli,
        [
            "--bootstrap",
            bootstrap,
            "--topic-prefix",
            prefix,
            *SHORT_SESSION,
            "replies",
            "tail",
            *args,
        ],
        catch_exceptions=False,
    )
    assert time.monotonic() - started < 30, "the tail did not stop by itself"
    return result


def json_lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [orjson.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def replies_topic(topic_factory: Callable[..., str]) -> tuple[str, str]:
    """(prefix, topic): the declared replies topic under a fresh prefix."""
    prefix = f"replies-{uuid.uuid4().hex[:8]}."
    return prefix, topic_factory(name=f"{prefix}fleetserve.replies", partitions=3)


def publish(raw: Producer, topic: str, replies: list[dict[str, Any]]) -> None:
    # One record per batch: Tansu reports a partition's end as its last batch's first
    # offset + 1, so a tail "from the end" would start inside a multi-record batch.
    for each in replies:
        raw.produce(topic, key=each["bot_id"].encode(), value=encode(MessageKind.REPLY, each))
        assert raw.flush(10) == 0


@pytest.mark.kafka
def test_tail_filters_by_bot_and_confidence_and_stops_at_limit(
    kafka_bootstrap: str,
    replies_topic: tuple[str, str],
    producer_factory: Callable[..., Producer],
) -> None:
    prefix, topic = replies_topic
    replies = [
        reply("a", 0.30, request_id="a-low-1"),
        reply("a", 0.90, request_id="a-high"),
        reply("b", 0.10, request_id="b-low"),
        reply("a", 0.20, request_id="a-low-2"),
        reply("a", 0.40, request_id="a-low-3"),
        reply("b", 0.95, request_id="b-high-1"),
        reply("b", 0.85, request_id="b-high-2", fallback=True),
    ]
    publish(producer_factory(partitioner="murmur2_random"), topic, replies)

    limited = tail(
        kafka_bootstrap,
        prefix,
        "--bot",
        "a",
        "--below",
        "0.5",
        "--from-beginning",
        "--limit",
        "2",
        "--json",
        "--idle-exit",
        "10",
    )
    assert [r["request_id"] for r in json_lines(limited)] == ["a-low-1", "a-low-2"]

    idle = tail(
        kafka_bootstrap,
        prefix,
        "--bot",
        "b",
        "--above",
        "0.5",
        "--from-beginning",
        "--idle-exit",
        "1",
    )
    assert idle.exit_code == 0, idle.output
    assert [line.split("  ")[6] for line in idle.stdout.splitlines()] == ["b-high-1", "b-high-2"]

    fallbacks = tail(
        kafka_bootstrap, prefix, "--fallback-only", "--from-beginning", "--idle-exit", "1", "--json"
    )
    assert [r["request_id"] for r in json_lines(fallbacks)] == ["b-high-2"]

    from_end = tail(kafka_bootstrap, prefix, "--idle-exit", "1", "--json")
    assert json_lines(from_end) == []  # without --from-beginning only new replies show


@pytest.mark.kafka
def test_a_group_resumes_after_what_it_printed(
    kafka_bootstrap: str,
    replies_topic: tuple[str, str],
    producer_factory: Callable[..., Producer],
) -> None:
    prefix, topic = replies_topic
    raw = producer_factory(partitioner="murmur2_random")
    publish(raw, topic, [reply("a", 0.5, request_id=f"r{i}") for i in range(6)])
    group = f"relabel-{uuid.uuid4().hex[:8]}"

    first = tail(
        kafka_bootstrap, prefix, "--group", group, "--from-beginning", "--limit", "4", "--json"
    )
    assert [r["request_id"] for r in json_lines(first)] == ["r0", "r1", "r2", "r3"]

    publish(raw, topic, [reply("a", 0.5, request_id="r6")])
    second = tail(
        kafka_bootstrap,
        prefix,
        "--group",
        group,
        "--from-beginning",
        "--idle-exit",
        "1.5",
        "--json",
    )
    assert [r["request_id"] for r in json_lines(second)] == ["r4", "r5", "r6"]

    third = tail(kafka_bootstrap, prefix, "--group", group, "--idle-exit", "1", "--json")
    assert json_lines(third) == []
