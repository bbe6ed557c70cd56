"""Every dead letter passes its own contract, whatever the record held (pure)."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetserve.contracts.codec import encode, validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.outcome import Failure, Origin, WorkerIdentity
from fleetserve.core.records import InboundRecord
from fleetserve.core.route import Route
from fleetserve.deadletters import reasons
from fleetserve.deadletters.build import (
    MAX_HEADER_NAME_CHARS,
    MAX_HEADER_VALUE_BYTES,
    MAX_HEADERS,
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    build_dead_letter,
    dead_letter_key,
    minimal_dead_letter,
)

NOW = 1_790_000_000_000
WORKER = WorkerIdentity("w-1", "real")


def sized(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def record(
    value: bytes | None = b"{}",
    key: bytes | None = b"bot-a",
    headers: tuple[tuple[str, bytes | None], ...] = (),
    timestamp_ms: int | None = NOW,
) -> InboundRecord:
    return InboundRecord("fleetserve.queries", 3, 42, key, value, headers, timestamp_ms)


FAILURE = Failure("decode", "decode", "not JSON", bot_id="bot-a", request_id="r-1")


def test_values_keys_and_headers_over_the_caps_are_left_out_and_named() -> None:
    headers = (
        ("ok", b"1"),
        ("n" * (MAX_HEADER_NAME_CHARS + 1), b"x"),
        ("big", sized(MAX_HEADER_VALUE_BYTES + 1)),
        *((f"h{i}", b"v") for i in range(MAX_HEADERS + 5)),
    )
    big = record(sized(MAX_VALUE_BYTES + 1), sized(MAX_KEY_BYTES + 1), headers, timestamp_ms=-5)
    letter = build_dead_letter(big, FAILURE, WORKER, now_ms=NOW)
    encode(MessageKind.DEAD_LETTER, letter)
    original = letter["original"]
    assert (original["value_b64"], original["key_b64"], original["timestamp_ms"]) == (
        None,
        None,
        None,
    )
    assert len(original["headers"]) == MAX_HEADERS
    assert original["headers"][0] == {"name": "ok", "value_b64": "MQ=="}
    omitted = original["omitted"]
    assert f"value: {MAX_VALUE_BYTES + 1} bytes, over the {MAX_VALUE_BYTES}-byte cap" in omitted
    assert f"key: {MAX_KEY_BYTES + 1} bytes" in omitted
    assert f"headers: 8 of {len(headers)} left out" in omitted  # 2 too big, 6 past 64
    assert "fetch the original from source" in omitted
    assert letter["source"] == {
        "topic": "fleetserve.queries",
        "partition": 3,
        "offset": 42,
        "consumer_group": "real",
    }
    assert dead_letter_key(big.key) is None


def test_within_the_caps_everything_is_kept_and_nothing_is_omitted() -> None:
    letter = build_dead_letter(
        record(headers=(("trace", b"\x00\xff"),)), FAILURE, WORKER, now_ms=NOW
    )
    validate(MessageKind.DEAD_LETTER, letter)
    assert letter["original"]["omitted"] is None
    assert letter["original"]["key_b64"] == "Ym90LWE="


def test_a_minimal_dead_letter_keeps_the_failure_and_the_coordinates() -> None:
    origin = Origin("fleetserve.queries", 9, 1234, NOW, attempt=3, first_failed_ms=NOW - 5)
    failure = Failure("model_missing", "load", "gone", bot_id="bot-a", stage="beta")
    letter = minimal_dead_letter(
        record(), failure, WORKER, now_ms=NOW, why="the broker refused it", origin=origin
    )
    encode(MessageKind.DEAD_LETTER, letter)
    assert (letter["reason"], letter["phase"], letter["stage"]) == ("model_missing", "load", "beta")
    assert letter["source"]["offset"] == 1234
    assert letter["attempts"] == 3
    assert letter["original"]["value_b64"] is None
    assert letter["original"]["headers"] == []
    assert "the broker refused it" in letter["original"]["omitted"]


TEXT = st.text(max_size=300) | st.text(string.printable, min_size=900, max_size=5000)
NAMES = st.text(max_size=40) | st.text(min_size=1020, max_size=1100) | st.just("\ud800x")
HEADERS = st.lists(
    st.tuples(NAMES, st.none() | st.binary(max_size=64) | st.integers(0, 20_000).map(sized)),
    max_size=80,
)
ROUTES = st.none() | st.builds(
    Route,
    st.text(max_size=70),
    st.sampled_from(["dev", "beta", "real", "prod"]),
    st.text(max_size=140),
    st.sampled_from(["0" * 64, "A" * 64, "x"]),
)
FAILURES = st.builds(
    Failure,
    st.sampled_from([*reasons.ALL, "made-up"]),
    st.sampled_from([*reasons.PHASES, "nowhere"]),
    TEXT,
    error_type=st.text(max_size=300) | st.just("fleetserve.errors.QueryFailed"),
    bot_id=st.none() | st.text(max_size=80) | st.just("bot-a"),
    request_id=st.none() | st.text(max_size=200),
    stage=st.none() | st.sampled_from(["dev", "beta", "real", "prod"]),
    route=ROUTES,
    deadline_ms=st.none() | st.integers(-(2**63), 2**63),
)
RECORDS = st.builds(
    InboundRecord,
    st.sampled_from(["fleetserve.queries", "fleetserve.retry", "bad topic/.."]),
    st.integers(0, 2**31),
    st.integers(0, 2**63 - 1),
    st.none() | st.binary(max_size=32) | st.integers(1000, 3000).map(sized),
    st.none() | st.binary(max_size=64) | st.sampled_from([MAX_VALUE_BYTES + 1]).map(sized),
    HEADERS.map(tuple),
    st.none() | st.integers(-(2**63), 2**63 - 1),
)
WORKERS = st.builds(
    WorkerIdentity, st.text(max_size=300) | st.just("w"), st.text(max_size=300) | st.just("g")
)


@settings(max_examples=300, deadline=None)
@given(RECORDS, FAILURES, WORKERS, st.integers(0, 2**62), st.integers(1, 2_000_000))
def test_any_record_and_failure_make_a_valid_dead_letter(
    inbound: InboundRecord, failure: Failure, worker: WorkerIdentity, now_ms: int, attempt: int
) -> None:
    origin = Origin(
        inbound.topic, inbound.partition, inbound.offset, inbound.timestamp_ms, attempt=attempt
    )
    full = build_dead_letter(inbound, failure, worker, now_ms=now_ms, origin=origin)
    encode(MessageKind.DEAD_LETTER, full)
    minimal = minimal_dead_letter(inbound, failure, worker, now_ms=now_ms, why="x" * 2000)
    encode(MessageKind.DEAD_LETTER, minimal)
    assert minimal["source"]["offset"] == inbound.offset
