"""The retry tier's pure parts: backoff, retry headers, the decision, what is due."""

from __future__ import annotations

import dataclasses

import pytest
from confluent_kafka import Producer

from fleetserve.broker.embedded import free_loopback_port
from fleetserve.contracts.codec import validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.backoff import BackoffPolicy, compute_backoff
from fleetserve.core.outcome import Failure, Origin, WorkerIdentity
from fleetserve.core.records import InboundRecord
from fleetserve.deadletters.build import build_dead_letter
from fleetserve.deadletters.headers import (
    DLT_ATTEMPTS,
    DLT_ORIGINAL_OFFSET,
    DLT_REASON,
    REPLAY_ATTEMPT,
    dead_letter_headers,
)
from fleetserve.errors import Disposition, ProducerQueueFull, classify
from fleetserve.kafka.headers import header_int
from fleetserve.retry.decide import after_transient_failure
from fleetserve.retry.due import split_due
from fleetserve.retry.state import (
    NOT_BEFORE,
    RetryState,
    original_headers,
    retried_origin,
    retry_headers,
    retry_state,
)
from fleetserve.serving.commit import produce_all
from fleetserve.serving.outputs import Output, PassResult

NOW = 1_790_000_000_000
POLICY = BackoffPolicy(base_ms=100, max_ms=1_000, max_attempts=4, jitter=0.5)
QUERY = InboundRecord("queries", 2, 41, b"bot-a", b'{"x": 1}', (("trace", b"\x00\xff"),), NOW - 50)
FIRST = Origin.of(QUERY)
TRANSIENT = Failure(
    "model_load_failed",
    "load",
    "store unreadable",
    bot_id="bot-a",
    request_id="r1",
    stage="real",
    retriable=True,
)


# -- backoff ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "draw", "expected"),
    [
        (1, 0.999999, 100),
        (1, 0.0, 50),
        (2, 0.999999, 200),
        (3, 0.0, 200),
        (4, 0.999999, 800),
        (5, 0.999999, 1_000),
        (60, 0.0, 500),
    ],
)
def test_backoff_doubles_with_jitter_up_to_the_cap(
    attempt: int, draw: float, expected: int
) -> None:
    assert compute_backoff(POLICY, attempt, draw) == expected


def test_backoff_without_jitter_is_exact_and_bad_input_is_refused() -> None:
    exact = dataclasses.replace(POLICY, jitter=0.0)
    assert [compute_backoff(exact, n, 0.3) for n in (1, 2, 3, 4, 5)] == [100, 200, 400, 800, 1000]
    with pytest.raises(ValueError, match="1-based"):
        compute_backoff(POLICY, 0, 0.5)
    with pytest.raises(ValueError, match="draw"):
        compute_backoff(POLICY, 1, 1.0)
    with pytest.raises(ValueError, match="base_ms"):
        BackoffPolicy(base_ms=0)
    with pytest.raises(ValueError, match="jitter"):
        BackoffPolicy(jitter=1.5)


# -- the decision -----------------------------------------------------------------------------


def test_a_first_transient_failure_is_retried_with_the_querys_first_coordinates() -> None:
    step = after_transient_failure(TRANSIENT, POLICY, origin=FIRST, now_ms=NOW, draw=0.999999)
    assert step == RetryState(
        attempts=1,
        not_before_ms=NOW + 100,
        first_failed_ms=NOW,
        reason="model_load_failed",
        message="store unreadable",
        topic="queries",
        partition=2,
        offset=41,
        timestamp_ms=NOW - 50,
    )


def retried(state: RetryState, *, offset: int = 7) -> InboundRecord:
    headers = (*original_headers(QUERY), *retry_headers(state))
    return InboundRecord("retry", 0, offset, QUERY.key, QUERY.value, headers, NOW)


def test_retry_headers_round_trip_and_keep_the_querys_own_headers() -> None:
    state = after_transient_failure(TRANSIENT, POLICY, origin=FIRST, now_ms=NOW, draw=0.5)
    assert isinstance(state, RetryState)
    record = retried(state)
    assert retry_state(record) == state
    assert original_headers(record) == QUERY.headers
    assert retry_state(QUERY) is None
    origin = retried_origin(record)
    assert origin == Origin("queries", 2, 41, NOW - 50, QUERY.headers, 2, NOW)


def test_later_attempts_keep_the_first_failure_and_the_last_one_gives_up() -> None:
    record = QUERY
    origin = FIRST
    for attempt in range(1, POLICY.max_attempts):
        step = after_transient_failure(
            TRANSIENT, POLICY, origin=origin, now_ms=NOW + attempt, draw=0.1
        )
        assert isinstance(step, RetryState)
        assert (step.attempts, step.first_failed_ms, step.offset) == (attempt, NOW + 1, 41)
        record = retried(step, offset=100 + attempt)
        next_origin = retried_origin(record)
        assert next_origin is not None
        origin = next_origin
    final = after_transient_failure(TRANSIENT, POLICY, origin=origin, now_ms=NOW + 99, draw=0.1)
    assert isinstance(final, Failure)
    assert (final.reason, final.phase, final.retriable) == ("retries_exhausted", "load", False)
    assert "after 4 attempts" in final.message
    assert "store unreadable" in final.message
    worker = WorkerIdentity("w1", "real")
    letter = build_dead_letter(record, final, worker, now_ms=NOW + 99, origin=origin)
    validate(MessageKind.DEAD_LETTER, letter)
    assert letter["attempts"] == 4
    assert (letter["first_failed_at_ms"], letter["last_failed_at_ms"]) == (NOW + 1, NOW + 99)
    assert letter["source"] == {
        "topic": "queries",
        "partition": 2,
        "offset": 41,
        "consumer_group": "real",
    }
    assert letter["original"]["headers"] == [{"name": "trace", "value_b64": "AP8="}]
    assert letter["original"]["timestamp_ms"] == NOW - 50


def test_a_retry_that_would_miss_the_deadline_ends_now() -> None:
    tight = dataclasses.replace(TRANSIENT, deadline_ms=NOW + 60)
    step = after_transient_failure(tight, POLICY, origin=FIRST, now_ms=NOW, draw=0.999999)
    assert isinstance(step, Failure)
    assert step.reason == "deadline_exceeded"
    assert not step.retriable


def test_unusable_retry_headers_count_as_absent() -> None:
    junk = InboundRecord("retry", 0, 1, b"k", b"v", (("fleetserve_retry-attempt", b"-3"),), NOW)
    assert retry_state(junk) is None
    state = after_transient_failure(TRANSIENT, POLICY, origin=FIRST, now_ms=NOW, draw=0.5)
    assert isinstance(state, RetryState)
    for name, bad in [
        ("fleetserve_retry-original-partition", b"99999999999"),
        ("fleetserve_retry-original-topic", b"../x"),
        ("fleetserve_retry-first-failure-ms", b"1"),
        ("fleetserve_retry-attempt", b"9999999"),
    ]:
        hostile = retried(state)
        hostile = hostile._replace(headers=(*hostile.headers, (name, bad)))
        assert retry_state(hostile) is None, name
    assert header_int((("n", b"x"),), "n", 5) == 5
    assert header_int((("n", None),), "n") == 0
    assert header_int((("n", b"1"), ("n", b"2")), "n") == 2


# -- what is due ------------------------------------------------------------------------------


def test_only_a_due_prefix_of_each_retry_partition_is_taken() -> None:
    def at(partition: int, offset: int, due: int) -> InboundRecord:
        return InboundRecord(
            "retry", partition, offset, b"k", b"v", ((NOT_BEFORE, str(due).encode()),)
        )

    fresh = InboundRecord("queries", 0, 5, b"k", b"v")
    records = [at(0, 1, NOW - 1), at(0, 2, NOW + 10), at(0, 3, NOW - 5), fresh, at(1, 9, NOW)]
    split = split_due(records, "retry", NOW)
    assert [(r.topic, r.offset) for r in split.due] == [("retry", 1), ("queries", 5), ("retry", 9)]
    assert split.held == {("retry", 0): (2, NOW + 10)}


# -- dead letters: context and headers --------------------------------------------------------


def test_a_dead_letter_carries_stage_replay_count_and_kafka_headers() -> None:
    replayed = QUERY._replace(headers=(*QUERY.headers, (REPLAY_ATTEMPT, b"2")))
    failure = Failure("no_deployment", "route", "nothing on beta", bot_id="bot-a", stage="beta")
    letter = build_dead_letter(replayed, failure, WorkerIdentity("w1", "real"), now_ms=NOW)
    validate(MessageKind.DEAD_LETTER, letter)
    assert (letter["stage"], letter["replay_attempt"], letter["attempts"]) == ("beta", 2, 1)
    assert letter["first_failed_at_ms"] == letter["last_failed_at_ms"] == NOW
    headers = dict(dead_letter_headers(letter))
    assert headers[DLT_REASON] == b"no_deployment"
    assert headers[DLT_ORIGINAL_OFFSET] == b"41"
    assert headers[DLT_ATTEMPTS] == b"1"
    assert all(isinstance(v, bytes) for v in headers.values())


def test_unknown_context_is_null_and_a_path_like_bot_never_reaches_the_dead_letter() -> None:
    failure = Failure(
        "schema", "decode", "bad", bot_id="../etc/passwd", stage="prod", deadline_ms=5
    )
    letter = build_dead_letter(QUERY, failure, WorkerIdentity("w1", "real"), now_ms=NOW)
    validate(MessageKind.DEAD_LETTER, letter)
    assert (letter["bot_id"], letter["stage"], letter["deadline_ms"]) == (None, None, None)


# -- a full producer queue --------------------------------------------------------------------


def test_a_producer_queue_that_never_drains_gives_up_with_a_retriable_error() -> None:
    # A real producer whose queue holds one message and whose broker never answers.
    producer = Producer(
        {
            "bootstrap.servers": f"127.0.0.1:{free_loopback_port()}",
            "queue.buffering.max.messages": 1,
        }
    )
    outputs = [Output("t", b"k", b"v"), Output("t", b"k", b"v", headers=(("h", b"1"),))]
    policy = BackoffPolicy(base_ms=1, max_ms=5, max_attempts=4)
    with pytest.raises(ProducerQueueFull, match="4 waits") as raised:
        produce_all(producer, PassResult(outputs=outputs), _no_rescue, policy=policy)
    assert classify(raised.value) is Disposition.RETRIABLE
    assert len(producer) == 1  # the first output is queued, the second never was
    producer.purge()
    producer.flush(0)


def _no_rescue(output: Output, _verdict: object) -> Output:
    raise AssertionError(f"nothing here is refused for itself: {output}")
