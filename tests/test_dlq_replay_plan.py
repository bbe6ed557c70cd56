"""What a replay decides and sends, pure: verdicts, rewritten values, headers, pacing."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from fleetserve.contracts.codec import validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.records import InboundRecord
from fleetserve.deadletters.headers import REPLAY_ATTEMPT, REPLAY_OF
from fleetserve.deadletters.operators.filters import DeadLetterFilter
from fleetserve.deadletters.operators.pacing import Pacer
from fleetserve.deadletters.operators.records import DeadLetterRecord, decode_dead_letter, parse_id
from fleetserve.deadletters.operators.replay_plan import (
    ReplayOptions,
    Verdict,
    build_replay,
    decide,
    ledger_key,
    replay_headers,
    rewrite_value,
)
from support.dead_letters import dead_letter, query_record

NOW = 1_800_000_000_000
DLQ = "fleetserve.dead-letters"
EVERYTHING = DeadLetterFilter()
OPTIONS = ReplayOptions()


def item(
    value: dict[str, Any] | None, *, offset: int = 7, problem: str | None = None
) -> DeadLetterRecord:
    record = InboundRecord(DLQ, 1, offset, b"alpha", orjson.dumps(value), (), NOW)
    return DeadLetterRecord(record, value, problem)


def letter(reason: str = "unknown_bot", **kwargs: Any) -> dict[str, Any]:
    replay_attempt = kwargs.pop("replay_attempt", 0)
    offset = kwargs.pop("offset", 3)
    record = query_record("alpha", partition=5, offset=offset, replay_attempt=replay_attempt)
    return dead_letter(record, reason, at_ms=NOW, **kwargs)


# -- verdicts --------------------------------------------------------------------------------


def test_a_plain_failure_is_replayed_with_the_next_attempt() -> None:
    decision = decide(item(letter()), EVERYTHING, OPTIONS, set())
    assert decision is not None
    assert decision.verdict is Verdict.REPLAY
    assert decision.ledger_key == "fleetserve.queries/5/3#1"


def test_not_selected_is_none() -> None:
    assert decide(item(letter()), DeadLetterFilter(bots=frozenset({"x"})), OPTIONS, set()) is None


@pytest.mark.parametrize("reason", ["decode", "schema", "too_large"])
def test_malformed_input_is_held_back_unless_named(reason: str) -> None:
    held = decide(item(letter(reason)), EVERYTHING, OPTIONS, set())
    assert held is not None
    assert held.verdict is Verdict.HELD_BACK
    assert f"--reason {reason}" in held.why
    named = DeadLetterFilter(reasons=frozenset({reason}))
    chosen = decide(item(letter(reason)), named, OPTIONS, set())
    assert chosen is not None
    assert chosen.verdict is Verdict.REPLAY


def test_the_ledger_and_this_runs_duplicates_are_skipped() -> None:
    decision = decide(item(letter()), EVERYTHING, OPTIONS, {"fleetserve.queries/5/3#1"})
    assert decision is not None
    assert decision.verdict is Verdict.ALREADY_REPLAYED


def test_a_query_that_failed_after_its_replay_can_be_replayed_again() -> None:
    replayed_once = {"fleetserve.queries/5/3#1"}
    decision = decide(item(letter(replay_attempt=1)), EVERYTHING, OPTIONS, replayed_once)
    assert decision is not None
    assert (decision.verdict, decision.ledger_key) == (Verdict.REPLAY, "fleetserve.queries/5/3#2")


def test_the_loop_guard_refuses_at_max_replays() -> None:
    guard = ReplayOptions(max_replays=2)
    below = decide(item(letter(replay_attempt=1)), EVERYTHING, guard, set())
    at = decide(item(letter(replay_attempt=2)), EVERYTHING, guard, set())
    assert below is not None
    assert at is not None
    assert below.verdict is Verdict.REPLAY
    assert at.verdict is Verdict.REFUSED
    assert "--max-replays 2" in at.why


def test_unreadable_is_never_replayed_and_only_shown_unfiltered() -> None:
    unreadable = item(None, problem="not a dead letter v1: boom")
    decision = decide(unreadable, EVERYTHING, OPTIONS, set())
    assert decision is not None
    assert decision.verdict is Verdict.UNREADABLE
    assert (
        decide(unreadable, DeadLetterFilter(reasons=frozenset({"decode"})), OPTIONS, set()) is None
    )


def test_decode_dead_letter_reports_instead_of_raising() -> None:
    good = InboundRecord(DLQ, 0, 1, None, orjson.dumps(letter()))
    assert decode_dead_letter(good).dead_letter is not None
    for value in (b"not json", b"[]", orjson.dumps({"version": 2}), None):
        bad = decode_dead_letter(InboundRecord(DLQ, 0, 1, None, value))
        assert bad.dead_letter is None
        assert bad.problem


def test_ids() -> None:
    assert parse_id("2:1041") == (2, 1041)
    for text in ("2", "a:1", "1:-1", ":", "1:2:3"):
        with pytest.raises(ValueError, match="partition:offset"):
            parse_id(text)


# -- what is sent ---------------------------------------------------------------------------


def test_keep_deadline_sends_the_original_bytes_back_to_their_partition() -> None:
    record = query_record(
        "alpha", partition=5, offset=3, ttl_ms=1000, headers=(("traceparent", b"00-ab"),)
    )
    value = dead_letter(record, at_ms=NOW)
    sent = build_replay(
        value, replay_of=f"{DLQ}/1/7", options=ReplayOptions(keep_deadline=True), now_ms=NOW
    )
    assert (sent.topic, sent.partition, sent.key) == ("fleetserve.queries", 5, b"alpha")
    assert sent.value == record.value
    assert not sent.rewritten
    assert sent.headers == (
        ("traceparent", b"00-ab"),
        (REPLAY_ATTEMPT, b"1"),
        (REPLAY_OF, f"{DLQ}/1/7".encode()),
    )


def test_a_fresh_deadline_replaces_ttl_and_keeps_sent_at() -> None:
    record = query_record("alpha", ttl_ms=1000, now_ms=NOW - 3_600_000)
    sent = build_replay(
        dead_letter(record, "deadline_exceeded", at_ms=NOW),
        replay_of="x/0/0",
        options=ReplayOptions(ttl_ms=45_000),
        now_ms=NOW,
    )
    query = orjson.loads(sent.value or b"")
    assert sent.rewritten
    assert query["deadline_ms"] == NOW + 45_000
    assert "ttl_ms" not in query
    assert query["sent_at_ms"] == NOW - 3_600_000
    validate(MessageKind.QUERY, query)


def test_an_absolute_deadline_is_replaced() -> None:
    record = query_record("alpha", deadline_ms=NOW - 1000)
    sent = build_replay(
        dead_letter(record, at_ms=NOW), replay_of="x/0/0", options=OPTIONS, now_ms=NOW
    )
    assert orjson.loads(sent.value or b"")["deadline_ms"] == NOW + 30_000


def test_a_query_without_deadline_goes_out_unchanged() -> None:
    record = query_record("alpha")
    sent = build_replay(
        dead_letter(record, at_ms=NOW), replay_of="x/0/0", options=OPTIONS, now_ms=NOW
    )
    assert sent.value == record.value
    assert not sent.rewritten


def test_stage_and_target_topic() -> None:
    record = query_record("alpha", partition=5)
    options = ReplayOptions(target_topic="elsewhere", stage="beta")
    sent = build_replay(
        dead_letter(record, at_ms=NOW), replay_of="x/0/0", options=options, now_ms=NOW
    )
    assert (sent.topic, sent.partition) == ("elsewhere", None)  # partitioned by key there
    assert orjson.loads(sent.value or b"")["stage"] == "beta"


def test_non_json_values_are_never_rewritten() -> None:
    for raw in (b"\xff\xfe binary", b"[1, 2]", b'{"version": 1, "bot_id": '):
        assert rewrite_value(raw, stage="beta", fresh_deadline_ms=NOW) is None
    assert rewrite_value(None, stage="beta", fresh_deadline_ms=NOW) is None


def test_rewrite_keeps_every_other_field_and_order() -> None:
    fields = b'"version":1,"request_id":"r","bot_id":"a","text":"hi","sent_at_ms":1'
    out = rewrite_value(b"{" + fields + b',"ttl_ms":5,"x":[1]}', stage=None, fresh_deadline_ms=99)
    assert out == b"{" + fields + b',"x":[1],"deadline_ms":99}'
    assert rewrite_value(b'{"stage":"beta"}', stage="beta", fresh_deadline_ms=None) is None


def test_replay_headers_replace_earlier_replay_and_retry_headers() -> None:
    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode()

    original = [
        {"name": "a", "value_b64": b64(b"1")},
        {"name": REPLAY_ATTEMPT, "value_b64": b64(b"1")},
        {"name": REPLAY_OF, "value_b64": b64(b"dlq/0/1")},
        {"name": "fleetserve_retry-attempt", "value_b64": b64(b"2")},
        {"name": "empty", "value_b64": None},
        {"name": "a", "value_b64": b64(b"2")},
    ]
    headers = replay_headers(original, attempt=2, replay_of="dlq/2/9")
    assert headers == (
        ("a", b"1"),
        ("empty", None),
        ("a", b"2"),
        (REPLAY_ATTEMPT, b"2"),
        (REPLAY_OF, b"dlq/2/9"),
    )


def test_ledger_key_is_the_source_query_and_attempt() -> None:
    value = letter(replay_attempt=2, offset=11)
    assert ledger_key(value) == "fleetserve.queries/5/11#3"
    shadow = query_record("alpha", partition=5, offset=11, replay_attempt=2)
    assert ledger_key(dead_letter(shadow, group="shadow-beta")) == ledger_key(value)


# -- pacing ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_spaces_sends_without_bursting_after_a_pause() -> None:
    clock = FakeClock()
    pacer = Pacer(4.0, clock=clock, sleep=clock.sleep)
    assert pacer.delay() == 0.0
    for _ in range(3):
        pacer.wait()
    assert clock.slept == [0.25, 0.25]
    assert pacer.delay() == 0.25  # what the sink hears before a long wait
    clock.now += 10  # a slow stretch of reading: no catching up afterwards
    pacer.wait()
    pacer.wait()
    assert clock.slept == [0.25, 0.25, 0.25]


@pytest.mark.parametrize("rate", [None, 0.0])
def test_no_rate_means_no_waiting(rate: float | None) -> None:
    clock = FakeClock()
    pacer = Pacer(rate, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        pacer.wait()
    assert clock.slept == []


def test_a_replay_that_failed_again_during_the_run_waits_for_the_next_run() -> None:
    replay_of = f"{DLQ}/1/7"
    record = query_record(
        "alpha", partition=5, offset=3, replay_attempt=1, headers=((REPLAY_OF, replay_of.encode()),)
    )
    value = dead_letter(record, at_ms=NOW)
    this_run = decide(item(value, offset=8), EVERYTHING, OPTIONS, set(), {replay_of})
    assert this_run is not None
    assert this_run.verdict is Verdict.ALREADY_REPLAYED
    later = decide(item(value, offset=8), EVERYTHING, OPTIONS, set(), set())
    assert later is not None
    assert later.verdict is Verdict.REPLAY
