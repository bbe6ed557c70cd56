"""The per-batch logic without Kafka: decode, fair share, route, answer, encode.

Models are real ONNX snapshots from the bot factory, run by onnxruntime.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetserve.contracts.codec import decode, validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.outcome import Failure, Verdict, WorkerIdentity
from fleetserve.core.records import InboundRecord
from fleetserve.core.route import Route
from fleetserve.errors import QueryFailed
from fleetserve.kafka.headers import header_int
from fleetserve.models.metadata import ModelMetadata
from fleetserve.models.runtime import new_session, read_model_metadata
from fleetserve.retry.state import NOT_BEFORE
from fleetserve.serving.answer import FALLBACK_INTENT, AnswerContext, Models, answer_batch
from fleetserve.serving.decode import DecodedQuery, decode_query
from fleetserve.serving.outcomes import OutcomeConfig, OutcomeWriter
from fleetserve.serving.outputs import PassResult
from fleetserve.serving.plan import plan_batch, select
from fleetserve.serving.processor import BatchProcessor, ProcessorConfig
from fleetserve.serving.targets import ReplyTargets
from fleetserve.stats.facts import reply_facts
from support.bots import BotFactory, BuiltBots
from support.builders import NOW, inbound, query_value

WORKER = WorkerIdentity("w-test", "g-test")


@dataclass(frozen=True)
class Model:
    route: Route
    session: Any
    metadata: ModelMetadata
    quantization: str


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=3, seed=5)


def load(built: BuiltBots, route: Route) -> Model:
    data = built.store.read_model(route.bot_id, route.model_version)
    manifest = built.store.read_manifest(route.bot_id, route.model_version)
    session = new_session(data)
    return Model(route, session, read_model_metadata(session), manifest["model"]["quantization"])


def decoded(value: dict[str, Any], stage: str = "real") -> DecodedQuery:
    result = decode_query(inbound(value), max_bytes=65536, default_stage=stage)
    assert isinstance(result, DecodedQuery), result
    return result


def context(clock: Any = None) -> AnswerContext:
    return AnswerContext(WORKER, "replies", clock_ms=clock or (lambda: NOW))


# -- decode --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        (b"{not json", b"b", "decode"),
        (b"\xff\xfe", b"b", "decode"),
        (b"[1, 2]", b"b", "decode"),
        (None, b"b", "decode"),
        ({"version": 1, "bot_id": "b"}, None, "schema"),
        ({**query_value("b"), "version": 2}, None, "schema"),
        ({**query_value("b"), "text": 12}, None, "schema"),
        ({**query_value("b"), "bot_id": "../etc"}, None, "schema"),
        (query_value("b", "x" * 70_000), None, "too_large"),
        (query_value("b"), b"another-bot", "schema"),
    ],
)
def test_bad_records_fail_with_a_reason(value: Any, key: bytes | None, reason: str) -> None:
    result = decode_query(inbound(value, key), max_bytes=65536, default_stage="real")
    assert isinstance(result, Failure)
    assert result.reason == reason, result.message
    assert result.phase == "decode"
    assert result.message


def test_a_query_decodes_with_the_workers_stage_and_an_absolute_deadline() -> None:
    plain = decoded(query_value("b", ttl_ms=100), stage="beta")
    assert plain.stage == "beta"
    assert plain.deadline_ms == NOW - 5 + 100
    assert decoded(query_value("b", stage="dev")).stage == "dev"


def test_an_invalid_query_keeps_what_can_be_read_for_its_dead_letter() -> None:
    result = decode_query(
        inbound({**query_value("b"), "text": ""}), max_bytes=65536, default_stage="real"
    )
    assert isinstance(result, Failure)
    assert result.bot_id == "b"
    assert result.request_id is not None


# -- fair share ----------------------------------------------------------------------------


def test_a_hot_bot_takes_at_most_its_share_and_its_partition_is_put_back() -> None:
    hot = [inbound(query_value("hot"), partition=0) for _ in range(10)]
    cold_same_partition = inbound(query_value("cold"), partition=0)
    other = [inbound(query_value(f"o{i}"), partition=1) for i in range(5)]
    take = select(
        [*hot, cold_same_partition, *other], retry_topic=None, now_ms=NOW, max_rows_per_bot=4
    )
    assert [r.offset for r in take.records] == [r.offset for r in hot[:4] + other]
    assert take.resume == {("q", 0): hot[4].offset}


def test_without_a_hot_bot_everything_is_taken() -> None:
    records = [inbound(query_value(f"b{i % 3}"), partition=i % 2) for i in range(9)]
    take = select(records, retry_topic=None, now_ms=NOW, max_rows_per_bot=3)
    assert take.records == records
    assert take.resume == {}


def retry_inbound(bot: str, offset: int, due_ms: int, partition: int = 0) -> InboundRecord:
    headers = ((NOT_BEFORE, str(due_ms).encode()),)
    return InboundRecord("retry", partition, offset, bot.encode(), b"{}", headers, NOW)


def test_a_retry_partition_held_by_a_share_and_a_due_time_resumes_at_its_first_leftover() -> None:
    """The retry tier's lost queries: a hot bot's share cut a retry partition at 14 and a
    record not yet due held it at 16; seeking to 16 skipped 14 and 15 for good."""
    due = [retry_inbound("hot", offset, NOW - 1) for offset in range(10, 16)]
    later = retry_inbound("hot", 16, NOW + 1000)
    take = select([*due, later], retry_topic="retry", now_ms=NOW, max_rows_per_bot=4)
    assert [r.offset for r in take.records] == [10, 11, 12, 13]
    assert take.resume == {("retry", 0): 14}
    assert take.pause_until == {}  # its first leftover is due: nothing to wait for
    head_not_due = select([later], retry_topic="retry", now_ms=NOW, max_rows_per_bot=4)
    assert head_not_due.resume == {("retry", 0): 16}
    assert head_not_due.pause_until == {("retry", 0): NOW + 1000}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["q", "retry"]),
            st.integers(0, 2),
            st.sampled_from(["a", "b", "c"]),
            st.integers(-5, 5),
        ),
        max_size=40,
    ),
    st.integers(1, 4),
)
def test_every_partition_advances_as_a_prefix_and_resumes_at_its_first_leftover(
    polled: list[tuple[str, int, str, int]], share: int
) -> None:
    offsets: dict[tuple[str, int], int] = {}
    records = []
    for topic, partition, bot, due_in in polled:
        offset = offsets.setdefault((topic, partition), 100)
        offsets[(topic, partition)] = offset + 1
        headers = ((NOT_BEFORE, str(NOW + due_in).encode()),)
        records.append(InboundRecord(topic, partition, offset, bot.encode(), b"{}", headers, NOW))
    take = select(records, retry_topic="retry", now_ms=NOW, max_rows_per_bot=share)
    processed = {r.coordinates for r in take.records}
    for where in {(r.topic, r.partition) for r in records}:
        mine = sorted(
            (r for r in records if (r.topic, r.partition) == where), key=lambda r: r.offset
        )
        done = [r.coordinates in processed for r in mine]
        assert done == sorted(done, reverse=True), "processed records are not a prefix"
        leftovers = [r.offset for r, d in zip(mine, done, strict=True) if not d]
        assert take.resume.get(where) == (leftovers[0] if leftovers else None)
        if where in take.pause_until:
            head = next(r for r in mine if r.offset == take.resume[where])
            assert header_int(head.headers, NOT_BEFORE) > NOW


# -- routing and deadlines -----------------------------------------------------------------


def test_plan_groups_by_route_and_fails_expired_and_unroutable_queries(built: BuiltBots) -> None:
    a, b = built.bot_ids[:2]

    def resolve(bot: str, stage: str) -> Route:
        if bot in (a, b):
            route: Route = built.route(bot, stage=stage)
            return route
        raise QueryFailed("unknown_bot", f"no bot {bot}", phase="route")

    queries = [
        decoded(query_value(a)),
        decoded(query_value(b)),
        decoded(query_value(a)),
        decoded(query_value("ghost")),
        decoded(query_value(a, deadline_ms=NOW - 1)),
    ]
    plan = plan_batch(queries, resolve, NOW)
    assert {r.bot_id: len(q) for r, q in plan.groups.items()} == {a: 2, b: 1}
    assert sorted(f.reason for _, f in plan.failed) == ["deadline_exceeded", "unknown_bot"]
    assert all(f.phase == "route" for _, f in plan.failed)


# -- answering -----------------------------------------------------------------------------


def test_real_models_answer_with_ranked_intents_and_model_context(built: BuiltBots) -> None:
    bot = built.bot_ids[0]
    route = built.route(bot)
    texts = [u.text for u in built.bots[bot].utterances[:6]]
    queries = [decoded(query_value(bot, text, top_k=2)) for text in texts]
    plan = plan_batch(queries, lambda _bot, _stage: route, NOW)
    outcome = answer_batch(plan, {route: load(built, route)}, context())
    assert len(outcome.replies) == len(texts)
    assert not outcome.failed
    expected = [u.intent for u in built.bots[bot].utterances[:6]]
    for reply, intent in zip(outcome.replies, expected, strict=True):
        value = reply.value
        validate(MessageKind.REPLY, value)
        assert reply.facts == reply_facts(value)  # the statistics count what readers see
        assert value["model"]["version"] == route.model_version
        assert value["model"]["sha256"] == route.sha256
        assert len(value["top_k"]) == 2
        assert value["top_k"][0]["score"] >= value["top_k"][1]["score"]
        assert value["intent"] in (intent, FALLBACK_INTENT, value["top_k"][0]["intent"])
    top = [r.value["top_k"][0]["intent"] for r in outcome.replies]
    assert sum(t == e for t, e in zip(top, expected, strict=True)) >= 5  # training texts


def test_a_replys_bytes_carry_the_chunks_fields_and_the_querys_own(built: BuiltBots) -> None:
    """The shared fields are encoded once per chunk; every reply still reads as a whole."""
    bot = built.bot_ids[0]
    route = built.route(bot)
    trace = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    queries = [
        decoded(query_value(bot, "first", trace=trace)),
        decoded(query_value(bot, "second", top_k=1)),
    ]
    plan = plan_batch(queries, lambda _bot, _stage: route, NOW)
    outcome = answer_batch(plan, {route: load(built, route)}, context())
    values = [r.value for r in outcome.replies]
    for value, query in zip(values, queries, strict=True):
        validate(MessageKind.REPLY, value)
        assert (value["request_id"], value["bot_id"]) == (query.request_id, bot)
        assert value["worker"] == {"id": "w-test", "group": "g-test"}
        assert value["stage"] == "real"
    assert values[0]["trace"] == trace
    assert "trace" not in values[1]
    assert len(values[1]["top_k"]) == 1


def test_a_reply_that_cannot_be_encoded_becomes_an_internal_dead_letter(
    built: BuiltBots,
) -> None:
    bot = built.bot_ids[0]
    route = built.route(bot)
    plan = plan_batch([decoded(query_value(bot))], lambda _bot, _stage: route, NOW)
    (reply,) = answer_batch(plan, {route: load(built, route)}, context()).replies
    broken = reply._replace(own={**reply.own, "confidence": {1, 2}})  # a set is not JSON
    writer = OutcomeWriter(OutcomeConfig("dlq", 65536), context())
    result = PassResult()
    writer.reply(broken, result)
    (output,) = result.outputs
    dead_letter = decode(MessageKind.DEAD_LETTER, output.value)
    assert (output.topic, dead_letter["reason"]) == ("dlq", "internal_error")
    assert dead_letter["request_id"] == reply.own["request_id"]
    assert dead_letter["bot_id"] == bot
    assert result.replies == {}


def test_private_deployments_leave_the_text_out(built: BuiltBots) -> None:
    bot = built.bot_ids[0]
    route = Route(bot, "real", built.versions[bot], built.route(bot).sha256, False)
    plan = plan_batch([decoded(query_value(bot))], lambda _bot, _stage: route, NOW)
    (reply,) = answer_batch(plan, {route: load(built, route)}, context()).replies
    assert reply.value["text"] is None


def test_a_model_failure_fails_only_that_bots_queries(built: BuiltBots) -> None:
    good, bad = built.bot_ids[:2]
    routes = {good: built.route(good), bad: built.route(bad)}
    queries = [decoded(query_value(good)), decoded(query_value(bad)), decoded(query_value(bad))]
    plan = plan_batch(queries, lambda bot, _stage: routes[bot], NOW)
    models: Models = {
        routes[good]: load(built, routes[good]),
        routes[bad]: QueryFailed("model_corrupt", "sha256 differs", phase="load"),
    }
    outcome = answer_batch(plan, models, context())
    assert [r.value["bot_id"] for r in outcome.replies] == [good]
    assert [(f.reason, f.route) for _, f in outcome.failed] == [("model_corrupt", routes[bad])] * 2


class ExplodingSession:
    def run(self, *_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("onnxruntime says no")


def test_an_inference_error_becomes_a_dead_letter_reason(built: BuiltBots) -> None:
    bot = built.bot_ids[0]
    route = built.route(bot)
    real = load(built, route)
    broken = Model(route, ExplodingSession(), real.metadata, real.quantization)
    plan = plan_batch([decoded(query_value(bot))], lambda _bot, _stage: route, NOW)
    outcome = answer_batch(plan, {route: broken}, context())
    ((_, failure),) = outcome.failed
    assert (failure.reason, failure.phase) == ("inference_error", "infer")
    assert "onnxruntime says no" in failure.message


class NonFiniteSession:
    """A real session whose scores come back NaN in one row (a numerically broken model)."""

    def __init__(self, real: Any, bad_row: int) -> None:
        self.real, self.bad_row = real, bad_row

    def run(self, *args: Any, **kwargs: Any) -> Any:
        (probs,) = self.real.run(*args, **kwargs)
        probs = probs.copy()
        probs[self.bad_row, 0] = float("nan")
        return [probs]


def test_non_finite_scores_fail_only_their_bots_chunk(built: BuiltBots) -> None:
    """A numerically broken model fails its own chunk; the rest of the pass is answered."""
    good, broken_bot, other = built.bot_ids[:3]
    routes = {bot: built.route(bot) for bot in (good, broken_bot, other)}
    real = load(built, routes[broken_bot])
    broken = Model(real.route, NonFiniteSession(real.session, 1), real.metadata, real.quantization)
    queries = [decoded(query_value(bot)) for bot in (good, broken_bot, broken_bot, other)]
    plan = plan_batch(queries, lambda bot, _stage: routes[bot], NOW)
    models: Models = {
        routes[good]: load(built, routes[good]),
        routes[broken_bot]: broken,
        routes[other]: load(built, routes[other]),
    }
    outcome = answer_batch(plan, models, context())
    assert sorted(r.value["bot_id"] for r in outcome.replies) == sorted([good, other])
    assert len(outcome.failed) == 2  # both of the broken bot's queries: its chunk failed
    for _, failure in outcome.failed:
        assert (failure.reason, failure.phase) == ("inference_error", "infer")
        assert failure.route == routes[broken_bot]
        assert "non-finite" in failure.message
    for reply in outcome.replies:
        assert all(0.0 <= entry["score"] <= 1.0 for entry in reply.value["top_k"])


def test_a_deadline_that_passes_during_inference_is_not_answered(built: BuiltBots) -> None:
    bot = built.bot_ids[0]
    route = built.route(bot)
    ticks = iter([NOW, NOW + 50])
    plan = plan_batch(
        [decoded(query_value(bot, deadline_ms=NOW + 10)), decoded(query_value(bot))],
        lambda _bot, _stage: route,
        NOW,
    )
    outcome = answer_batch(plan, {route: load(built, route)}, context(lambda: next(ticks)))
    assert len(outcome.replies) == 1
    ((_, failure),) = outcome.failed
    assert (failure.reason, failure.phase) == ("deadline_exceeded", "infer")


# -- the whole pass ------------------------------------------------------------------------


def test_every_record_of_a_pass_ends_in_exactly_one_output(built: BuiltBots) -> None:
    bots = built.bot_ids
    routes: dict[str, Route] = {bot: built.route(bot) for bot in bots}
    models = {route: load(built, route) for route in routes.values()}

    def resolve(bot: str, _stage: str) -> Route:
        if bot not in routes:
            raise QueryFailed("unknown_bot", f"no bot {bot}", phase="route")
        return routes[bot]

    @contextmanager
    def pinned(wanted: Sequence[Route]) -> Iterator[Models]:
        yield {route: models[route] for route in wanted}

    processor = BatchProcessor(
        ProcessorConfig(
            "dlq",
            "real",
            65536,
            100,
            reply_targets=ReplyTargets(allowed=("replies", "elsewhere"), control_names={"queries"}),
        ),
        AnswerContext(WORKER, "replies"),
        resolve,
        pinned,
    )
    records = [inbound(query_value(bot)) for bot in bots * 5]
    records += [inbound(b"junk", b"x"), inbound(query_value("ghost"))]
    records.append(inbound(query_value(bots[0], reply_to={"topic": "queries"})))
    records.append(inbound(query_value(bots[1], reply_to={"topic": "elsewhere", "partition": 0})))
    started = time.perf_counter()
    result = processor.process(records)
    assert time.perf_counter() - started < 30  # generous: one pass, not a benchmark
    assert len(result.outputs) == len(records)
    assert result.next_offsets == {("q", 0): max(r.offset for r in records) + 1}
    dead = [decode(MessageKind.DEAD_LETTER, o.value) for o in result.outputs if o.topic == "dlq"]
    assert sorted(d["reason"] for d in dead) == ["decode", "schema", "unknown_bot"]
    replies = [orjson.loads(o.value) for o in result.outputs if o.topic != "dlq"]
    for reply in replies:
        validate(MessageKind.REPLY, reply)
    assert {o.topic for o in result.outputs} == {"dlq", "replies", "elsewhere"}
    junk = next(d for d in dead if d["reason"] == "decode")
    assert junk["original"]["value_b64"] == "anVuaw=="
    assert junk["original"]["headers"] == [{"name": "h", "value_b64": "AP8="}]
    assert result.replies == {"real": len(bots) * 5 + 1}


def test_records_decided_before_the_pass_become_their_dead_letters_unprocessed(
    built: BuiltBots,
) -> None:
    def never(*_args: Any) -> Any:
        raise AssertionError("a decided record must not be routed or answered")

    processor = BatchProcessor(
        ProcessorConfig("dlq", "real", 65536, 100), AnswerContext(WORKER, "replies"), never, never
    )
    refused, poison = inbound(query_value(built.bot_ids[0])), inbound(query_value(built.bot_ids[1]))
    verdicts = {
        refused.coordinates: Verdict("too_large", "decode", "refused by the broker", minimal=True),
        poison.coordinates: Verdict("poison", "decode", "a worker died 2 times"),
    }
    result = processor.process([refused, poison], verdicts)
    letters = [decode(MessageKind.DEAD_LETTER, o.value) for o in result.outputs]
    assert [(d["reason"], d["request_id"]) for d in letters] == [
        ("too_large", orjson.loads(refused.value or b"")["request_id"]),
        ("poison", orjson.loads(poison.value or b"")["request_id"]),
    ]
    assert letters[0]["original"]["value_b64"] is None
    assert "refused by the broker" in letters[0]["original"]["omitted"]
    assert letters[1]["original"]["value_b64"] is not None
    assert result.dead_letters == {"too_large": 1, "poison": 1}
