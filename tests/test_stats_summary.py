"""Per-bot summaries: counting, merging, the contract, and the worker-side accumulator (pure)."""

from __future__ import annotations

import itertools
import random
import typing
from typing import Any

import orjson
import pytest

from fleetserve.contracts import messages
from fleetserve.contracts.codec import decode, validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.errors import ContractError
from fleetserve.stats.accumulator import StatsAccumulator, StatsIdentity
from fleetserve.stats.buckets import LATENCY_BUCKETS, latency_bucket, quantile, unit_bucket
from fleetserve.stats.facts import OutcomeFacts, dead_letter_facts, reply_facts
from fleetserve.stats.record import FlushInfo, parse_record, stats_record
from fleetserve.stats.summary import StatsKey, Summary, flat, from_flat, merged

KEY = StatsKey("bank", "v1", "real")
IDENTITY = StatsIdentity("w", "g", 1_754_000_000_000)


def reply(confidence: float = 0.9, second: float = 0.05, fallback: bool = False) -> dict[str, Any]:
    return {
        "bot_id": "bank",
        "stage": "real",
        "model": {"version": "v1", "sha256": "0" * 64, "quantization": "int8"},
        "confidence": confidence,
        "top_k": [{"intent": "a", "score": confidence}, {"intent": "b", "score": second}],
        "fallback": fallback,
        "timings": {"queued_ms": 1.0, "inference_ms": 0.4, "total_ms": 12.5},
    }


def rounded(value: Any) -> Any:
    """Floats to 9 places, everywhere: sums added in another order differ in the last bits."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


def random_summary(rng: random.Random) -> Summary:
    summary = Summary()
    for _ in range(rng.randrange(0, 30)):
        summary.add_reply(
            confidence=rng.random(),
            margin=rng.random() if rng.random() < 0.9 else None,
            fallback=rng.random() < 0.2,
            latency_ms=rng.expovariate(0.01),
            inference_ms=rng.random(),
        )
    for _ in range(rng.randrange(0, 3)):
        summary.add_dead_letter(rng.choice(["deadline_exceeded", "inference_error"]))
    return summary


def test_buckets_cover_their_ranges() -> None:
    assert unit_bucket(0.0) == 0
    assert unit_bucket(0.0999) == 0
    assert unit_bucket(0.1) == 1
    assert unit_bucket(1.0) == 9
    assert unit_bucket(1.0000001) == 9
    assert latency_bucket(0.5) == 0
    assert latency_bucket(1) == 1  # upper bounds are exclusive
    assert latency_bucket(10**9) == LATENCY_BUCKETS - 1
    assert quantile([0, 0, 3, 1], 0.5, [1, 2, 3, 4]) == 3
    assert quantile([0, 0, 0, 0], 0.5, [1, 2, 3, 4]) is None


def test_reply_facts_count_confidence_margin_and_fallback() -> None:
    summary = Summary()
    reply_facts(reply(0.9, 0.05)).add_to(summary)
    reply_facts(reply(0.3, 0.25, fallback=True)).add_to(summary)
    assert summary.replies == 2
    assert summary.fallbacks == 1
    assert summary.confidence_hist[9] == 1
    assert summary.confidence_hist[3] == 1
    assert summary.margin_hist[8] == 1  # 0.85
    assert summary.margin_hist[0] == 1  # 0.05
    assert summary.confidence_sum == pytest.approx(1.2)
    assert summary.confidence_sum_sq == pytest.approx(0.9)
    assert sum(summary.latency_hist) == 2
    assert summary.inference_sum_ms == pytest.approx(0.8)


def test_a_reply_with_one_score_has_no_margin() -> None:
    value = reply()
    value["top_k"] = value["top_k"][:1]
    summary = Summary()
    reply_facts(value).add_to(summary)
    assert summary.replies == 1
    assert sum(summary.margin_hist) == 0


def test_dead_letter_facts_use_the_model_context_or_nothing() -> None:
    model = {"version": "v2", "sha256": "0" * 64, "stage": "beta"}
    routed = {"bot_id": "bank", "reason": "inference_error", "stage": "real", "model": model}
    facts = dead_letter_facts(routed)
    assert facts == OutcomeFacts(StatsKey("bank", "v2", "beta"), reason="inference_error")
    unrouted = dead_letter_facts({"bot_id": "bank", "reason": "no_deployment", "stage": "real"})
    assert unrouted is not None
    assert unrouted.key == StatsKey("bank", None, "real")
    assert dead_letter_facts({"bot_id": None, "reason": "decode", "stage": None}) is None


def test_merging_is_order_free_and_equals_counting_everything_once() -> None:
    rng = random.Random(7)  # noqa: S311
    parts = [random_summary(rng) for _ in range(6)]
    forward = merged(parts)
    backward = merged(list(reversed(parts)))
    assert rounded(forward.counts()) == rounded(backward.counts())
    assert forward.replies == sum(p.replies for p in parts)
    assert forward.dead_letter_count == sum(p.dead_letter_count for p in parts)
    assert sum(forward.confidence_hist) == forward.replies
    assert sum(forward.latency_hist) == forward.replies


def test_counts_round_trip_through_the_contract() -> None:
    summary = random_summary(random.Random(3))  # noqa: S311
    summary.add_reply(confidence=1.0, margin=1.0, fallback=False, latency_ms=0.0, inference_ms=0)
    identity = StatsIdentity("w-1", "g", 1_754_900_000_000)
    clock = itertools.count(1_754_900_000_000, 500)
    accumulator = StatsAccumulator(identity, interval_ms=1, clock_ms=lambda: next(clock))
    accumulator.pending[KEY] = summary
    [(key, value)] = accumulator.flush_records()
    assert key == b"bank"
    record = decode(MessageKind.BOT_STATS, value)
    assert record["seq"] == 1
    parsed_key, parsed = parse_record(record)
    assert parsed_key == KEY
    assert rounded(parsed.counts()) == rounded(summary.counts())


@pytest.mark.parametrize("seed", range(30))
def test_every_flushed_record_is_inside_the_contract(seed: int) -> None:
    """Workers serialize bot-stats records without the schema check (69.0 against 6.8 us a
    record): this holds the builder to the contract, empty and extreme summaries too."""
    rng = random.Random(seed)  # noqa: S311
    reasons = typing.get_args(messages.DeadLetterReason)
    clock = itertools.count(1_754_900_000_000, 700)
    accumulator = StatsAccumulator(IDENTITY, interval_ms=1, clock_ms=lambda: next(clock))
    for bot in range(rng.randrange(1, 6)):
        key = StatsKey(f"bot-{bot}", rng.choice(["v1", None]), rng.choice(["real", "beta", None]))
        summary = accumulator.pending[key] = random_summary(rng)
        summary.add_dead_letter(rng.choice(reasons), rng.randrange(0, 3))
        if rng.random() < 0.3:
            summary.add_reply(
                confidence=1.0, margin=0.0, fallback=True, latency_ms=1e9, inference_ms=1e6
            )
    records = accumulator.flush_records()
    assert len(records) == len(accumulator.pending)
    for record_key, value in records:
        record = orjson.loads(value)
        validate(MessageKind.BOT_STATS, record)
        assert record_key == record["bot_id"].encode()


def test_a_non_finite_sum_is_refused_not_written_as_null() -> None:
    summary = Summary()
    summary.add_reply(
        confidence=0.5, margin=0.1, fallback=False, latency_ms=float("inf"), inference_ms=1.0
    )
    with pytest.raises(ContractError, match=r"latency_ms\.sum: must be a finite number"):
        stats_record(KEY, summary, FlushInfo("w", "g", 1, 1, 1, 2))


def test_the_contract_refuses_a_summary_with_a_reason_that_does_not_exist() -> None:
    summary = Summary()
    summary.add_dead_letter("timeout")

    record = {
        "version": 1,
        "bot_id": "bank",
        "model_version": "v1",
        "stage": "real",
        "window_start_ms": 1_754_900_000_000,
        "window_end_ms": 1_754_900_000_000,
        "worker": {"id": "w", "group": "g", "started_at_ms": 1_754_900_000_000},
        "seq": 1,
        **summary.counts(),
    }
    with pytest.raises(ContractError):
        validate(MessageKind.BOT_STATS, orjson.loads(orjson.dumps(record)))


class Clock:
    def __init__(self) -> None:
        self.now = 1_754_900_000_000

    def __call__(self) -> int:
        return self.now


def fact(bot: str = "bank", version: str = "v1") -> OutcomeFacts:
    return OutcomeFacts(StatsKey(bot, version, "real"), confidence=0.8, margin=0.5)


def test_nothing_is_flushed_before_the_interval_or_when_nothing_happened() -> None:
    clock = Clock()
    accumulator = StatsAccumulator(IDENTITY, interval_ms=2_000, clock_ms=clock)
    assert accumulator.flush_records() == []
    accumulator.committed([fact()], flushed=False)
    clock.now += 1_999
    assert accumulator.flush_records() == []
    clock.now += 1
    assert len(accumulator.flush_records()) == 1


def test_an_aborted_pass_keeps_pending_counts_and_adds_none_of_its_own() -> None:
    clock = Clock()
    accumulator = StatsAccumulator(IDENTITY, interval_ms=1_000, clock_ms=clock)
    accumulator.committed([fact(), fact("shop")], flushed=False)
    clock.now += 1_000
    first = accumulator.flush_records()
    assert len(first) == 2
    # The pass carrying the flush aborted: committed() is not called; the pass is re-read.
    again = accumulator.flush_records()
    assert again == first
    accumulator.committed([fact()], flushed=True)
    assert accumulator.seq == 1
    # The flushed keys are gone; the committed pass's own outcome is pending.
    assert list(accumulator.pending) == [StatsKey("bank", "v1", "real")]
    assert accumulator.pending[StatsKey("bank", "v1", "real")].replies == 1


def test_every_committed_outcome_is_flushed_exactly_once_whatever_aborts() -> None:
    """A random run of passes, some aborted: the flushed records add up to the committed."""
    rng = random.Random(11)  # noqa: S311
    clock = Clock()
    accumulator = StatsAccumulator(IDENTITY, interval_ms=700, clock_ms=clock)
    committed = Summary()
    flushed = Summary()
    seqs: list[int] = []
    for _ in range(400):
        clock.now += rng.randrange(0, 300)
        outcomes = [fact(rng.choice(["a", "b", "c"])) for _ in range(rng.randrange(0, 4))]
        records = accumulator.flush_records()
        if rng.random() < 0.25:
            continue  # aborted: neither its outcomes nor its flush happened
        accumulator.committed(outcomes, flushed=bool(records))
        for one in outcomes:
            one.add_to(committed)
        for _, value in records:
            record = orjson.loads(value)
            seqs.append(record["seq"])
            flushed.merge(parse_record(record)[1])
    accumulator.closing()
    for _, value in accumulator.flush_records():
        flushed.merge(parse_record(orjson.loads(value))[1])
    assert flushed.replies == committed.replies > 0
    assert seqs == sorted(seqs)


def test_too_many_keys_flush_early() -> None:
    clock = Clock()
    accumulator = StatsAccumulator(IDENTITY, interval_ms=60_000, max_keys=3, clock_ms=clock)
    accumulator.committed([fact("a"), fact("b")], flushed=False)
    assert not accumulator.due()
    accumulator.committed([fact("c")], flushed=False)
    assert accumulator.due()


def test_the_flat_form_round_trips() -> None:
    summary = random_summary(random.Random(5))  # noqa: S311
    summary.add_dead_letter("poison", 3)
    again = from_flat(orjson.loads(orjson.dumps(flat(summary))))
    assert rounded(again.counts()) == rounded(summary.counts())
    assert from_flat(flat(Summary())).counts() == Summary().counts()
