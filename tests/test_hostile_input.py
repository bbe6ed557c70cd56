"""Hostile input: thousands of generated bad records interleaved with good traffic.

The corpus (tests/hostile_corpus.py) is drawn with hypothesis, deterministically, and sent
to a real broker with real ONNX models behind one in-process worker. Every record must end
in exactly one committed outcome: a reply for anything the query contract allows, else a
dead letter with the reason the contract names, carrying the original bytes. The worker
must survive all of it: same thread, still ready, every record counted.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import pytest
from confluent_kafka import KafkaError, Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import BotFactory, BuiltBots, ConsumerFactory, ProducerFactory
from fleetserve.client.query import make_query
from fleetserve.contracts import MessageKind, validate
from fleetserve.deadletters.build import dead_letter_key
from hostile_corpus import (
    BOT_ID,
    DECODE,
    NO_DEPLOYMENT,
    PHASES,
    REPLY,
    UNKNOWN_BOT,
    Case,
    Fleet,
    check_consistent,
    duplicate_request_ids,
    plan,
    with_raw_field,
)
from serving_harness import Harness, RunningWorker

pytestmark = pytest.mark.kafka

T = TypeVar("T")
GOOD_PER_BOT = 300
DUPLICATED = 100  # exact copies of random corpus records, sent again
ROUTE_REASONS = frozenset({UNKNOWN_BOT, NO_DEPLOYMENT, "deadline_exceeded"})


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=4, seed=29)


# -- the corpus ---------------------------------------------------------------------------------


def seeded(seed: int) -> random.Random:
    """Reproducible shuffles and picks; nothing here needs to be unpredictable."""
    return random.Random(seed)  # noqa: S311


def draw_all(strategy: st.SearchStrategy[T], examples: int) -> list[T]:
    """``examples`` values of ``strategy``, drawn by hypothesis itself, deterministically."""
    drawn: list[T] = []

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def keep(value: T) -> None:
        drawn.append(value)

    keep()
    return drawn


def hostile_corpus(fleet: Fleet) -> list[Case]:
    cases: list[Case] = []
    for strategy, examples in plan(fleet):
        cases.extend(draw_all(strategy, examples))
    for group in draw_all(duplicate_request_ids(fleet), 50):
        cases.extend(group)
    cases.extend(seeded(5).sample(cases, DUPLICATED))
    return cases


def good_traffic(built: BuiltBots, bots: Sequence[str]) -> list[Case]:
    rng = seeded(3)
    harmless: list[tuple[tuple[str, bytes | None], ...]] = [
        (),
        (("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"),),
        (("content-type", b"application/json"), ("x-empty", None)),
    ]
    cases = []
    for bot in bots:
        for utterance in built.bots[bot].utterances[:GOOD_PER_BOT]:
            query = make_query(bot, utterance.text)
            cases.append(
                Case(
                    "good traffic",
                    REPLY,
                    bot.encode(),
                    orjson.dumps(query),
                    rng.choice(harmless),
                    request_id=query["request_id"],
                    bot_id=bot,
                )
            )
    return cases


# -- sending and collecting ---------------------------------------------------------------------


def produce(producer_factory: ProducerFactory, topic: str, cases: Sequence[Case]) -> None:
    producer = producer_factory(
        **{"linger.ms": 50, "queue.buffering.max.messages": 200_000, "message.max.bytes": 2**20}
    )
    failed: list[str] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failed.append(error.str())

    for case in cases:
        producer.produce(
            topic,
            key=case.key,
            value=case.value,
            headers=list(case.headers) or None,
            on_delivery=delivered,
        )
        producer.poll(0)
    assert producer.flush(60) == 0, "not every record was delivered within 60 s"
    assert not failed, f"{len(failed)} records refused by the broker: {Counter(failed)}"


@dataclass(frozen=True)
class Outcome:
    topic: str
    key: bytes | None
    value: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.value["reason"]) if "reason" in self.value else REPLY


def collect_outcomes(
    consumers: ConsumerFactory,
    topics: list[str],
    count: int,
    running: RunningWorker,
    timeout_s: float = 120,
) -> list[Outcome]:
    """Committed outputs until ``count`` arrived and two quiet seconds passed (duplicates).

    Gives up early, after a last look, when the worker thread has died.
    """
    consumer = consumers(*topics, **{"isolation.level": "read_committed"})
    got: list[Outcome] = []
    deadline = time.monotonic() + timeout_s
    settled_at: float | None = None
    while time.monotonic() < deadline:
        if not running.thread.is_alive():
            deadline = min(deadline, time.monotonic() + 2.0)
        for message in consumer.consume(1000, 0.2):
            if message.error() is None:
                value = orjson.loads(message.value() or b"null")
                got.append(Outcome(message.topic() or "", message.key(), value))
        if len(got) >= count:
            settled_at = settled_at or time.monotonic()
            if time.monotonic() - settled_at >= 2.0:
                break
    consumer.unsubscribe()
    return got


# -- matching outcomes to records ---------------------------------------------------------------


@dataclass
class Matching:
    """Which record each outcome belongs to; dead letters by original bytes, replies by id."""

    cases: Sequence[Case]
    outcome_of: dict[int, Outcome] = field(default_factory=dict)
    strays: list[Outcome] = field(default_factory=list)

    def run(self, outcomes: Sequence[Outcome]) -> Matching:
        by_bytes: dict[Any, list[int]] = defaultdict(list)
        by_request: dict[str, list[int]] = defaultdict(list)
        for index, case in enumerate(self.cases):
            by_bytes[case.identity].append(index)
            if case.request_id is not None:
                by_request[case.request_id].append(index)
        for outcome in outcomes:
            if outcome.kind == REPLY:
                candidates = by_request.get(outcome.value["request_id"], [])
            else:
                original = outcome.value["original"]
                identity = (
                    original["key_b64"],
                    original["value_b64"],
                    tuple((h["name"], h["value_b64"]) for h in original["headers"]),
                )
                candidates = by_bytes.get(identity, [])
            self._take(outcome, candidates)
        return self

    def _take(self, outcome: Outcome, candidates: list[int]) -> None:
        free = [i for i in candidates if i not in self.outcome_of]
        if not free:
            self.strays.append(outcome)
            return
        # Prefer a record that expects this very outcome (duplicates share ids or bytes).
        best = next((i for i in free if self.cases[i].expected == outcome.kind), free[0])
        self.outcome_of[best] = outcome

    def report(self) -> list[str]:
        """One line per (category, expected, got) with a few examples; empty when all right."""
        wrong: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for index, case in enumerate(self.cases):
            outcome = self.outcome_of.get(index)
            got = "nothing" if outcome is None else outcome.kind
            if got != case.expected:
                detail = "" if outcome is None else str(outcome.value.get("message", ""))[:160]
                wrong[(case.category, case.expected, got)].append(f"{show(case)} -> {detail}")
        lines = [
            f"{category}: {len(examples)} expected {expected}, got {got}; e.g. "
            + " | ".join(examples[:3])
            for (category, expected, got), examples in sorted(wrong.items())
        ]
        lines += [f"stray outcome (no such record): {s.value}"[:400] for s in self.strays[:10]]
        return lines


def show(case: Case) -> str:
    """A record in a line: its key, and its value without the padding (with its size)."""
    value = "None" if case.value is None else f"{case.value.strip()[:100]!r} ({len(case.value)} B)"
    return f"key={case.key if case.key is None else case.key[:40]!r} value={value}"


# -- checks on each outcome ---------------------------------------------------------------------


Problem = tuple[str, str]  # what is wrong (grouped on), and this record's detail


def dead_letter_problems(case: Case, outcome: Outcome, queries_topic: str) -> list[Problem]:
    dead = outcome.value
    problems = []
    try:
        validate(MessageKind.DEAD_LETTER, dead)
    except Exception as exc:  # the contract checker's own error, reported with the rest
        problems.append(("breaks dead_letter v1", str(exc)))
    if dead["phase"] != PHASES.get(dead["reason"], dead["phase"]):
        problems.append((f"phase {dead['phase']} for {dead['reason']}", ""))
    if outcome.key != dead_letter_key(case.key):  # the original key, unless over its cap
        problems.append(("dead letter not keyed by the original key", repr(outcome.key)))
    if dead["source"]["topic"] != queries_topic:
        problems.append(("source is not the queries topic", dead["source"]["topic"]))
    bot, rid = dead["bot_id"], dead["request_id"]
    ids = f"bot_id {bot!r}, request_id {rid!r}"
    if bot is not None and (not BOT_ID.fullmatch(bot) or bot != case.bot_id):
        problems.append(("bot_id is neither null nor the query's valid bot id", ids))
    if rid is not None and rid != case.request_id:
        problems.append(("request_id is neither null nor the query's", ids))
    if dead["reason"] == DECODE and (bot, rid) != (None, None):
        problems.append(("ids read from an unreadable record", ids))
    routed = dead["reason"] in ROUTE_REASONS or case.category.startswith("key is not")
    if routed and (bot, rid) != (case.bot_id, case.request_id):
        problems.append(("a decoded query's ids are missing", ids))
    return problems


def reply_problems(case: Case, outcome: Outcome, replies_topic: str) -> list[Problem]:
    reply = outcome.value
    problems = []
    try:
        validate(MessageKind.REPLY, reply)
    except Exception as exc:  # the contract checker's own error, reported with the rest
        problems.append(("breaks reply v1", str(exc)))
    if reply["bot_id"] != case.bot_id:
        problems.append(("reply names another bot", repr(reply["bot_id"])))
    if outcome.topic != replies_topic:
        problems.append(("reply not on the replies topic", outcome.topic))
    return problems


def outcome_problems(matching: Matching, queries: str, replies: str) -> list[str]:
    """Problems of the right outcomes, one line per (category, problem) with an example."""
    found: dict[str, list[str]] = defaultdict(list)
    for index, outcome in matching.outcome_of.items():
        case = matching.cases[index]
        if outcome.kind != case.expected:
            continue  # already in the matching report
        check = reply_problems if outcome.kind == REPLY else dead_letter_problems
        topic = replies if outcome.kind == REPLY else queries
        for what, detail in check(case, outcome, topic):
            found[f"{case.category}: {what}"].append(f"{detail[:200]} for {show(case)}")
    return [f"{what} ({len(v)}x), e.g. {v[0]}" for what, v in sorted(found.items())]


def metric(running: RunningWorker, name: str, **labels: str) -> float:
    value = running.worker.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def assert_still_the_same_worker(
    running: RunningWorker, cases: Sequence[Case], assigns_before: float
) -> None:
    assert running.thread.is_alive(), "the worker thread died"
    health = running.worker.health()
    assert health.ready, f"the worker is no longer ready: {health}"
    assert metric(running, "fleetserve_rebalances_total", kind="assign") == assigns_before
    assert metric(running, "fleetserve_records_total") == len(cases)
    expected = Counter(case.expected for case in cases)
    replies = expected.pop(REPLY)
    assert metric(running, "fleetserve_replies_total", stage="real") == replies
    counted = {
        reason: metric(running, "fleetserve_dead_letters_total", reason=reason)
        for reason in expected
    }
    assert counted == {reason: float(n) for reason, n in expected.items()}


def deploy_fleet(harness: Harness) -> Fleet:
    """Every bot but the last deployed on real; the last on beta only."""
    built = harness.built
    *deployed, beta_only = built.bot_ids
    for bot in deployed:
        harness.deployer.deploy(built.route(bot))
    harness.deployer.deploy(built.route(beta_only, stage="beta"))
    topics = harness.topics
    return Fleet(
        deployed=tuple(deployed),
        beta_only=beta_only,
        known=frozenset(built.bot_ids),
        replies_topic=topics.name("replies"),
        control_topics=tuple(
            topics.name(role)
            for role in ("queries", "dead_letters", "retry", "replays", "deployments")
        ),
        now_ms=time.time_ns() // 1_000_000,
    )


# -- the test -------------------------------------------------------------------------------------


def test_thousands_of_hostile_records_among_good_traffic_each_get_the_right_outcome(
    harness: Harness, producer_factory: ProducerFactory
) -> None:
    """~3,500 generated hostile records and 900 real utterances, shuffled, to one worker.

    Outcomes are matched to records by the dead letter's original bytes (key, value and
    headers, byte for byte) or by the reply's request id, counting records, not ids.
    """
    built = harness.built
    fleet = deploy_fleet(harness)
    deployed = fleet.deployed
    topics = harness.topics
    started = time.monotonic()
    hostile = hostile_corpus(fleet)
    generated_s = time.monotonic() - started
    check_consistent(hostile)
    assert len(hostile) >= 2000
    cases = hostile + good_traffic(built, deployed)
    seeded(17).shuffle(cases)

    running = harness.start_worker()
    assigns = metric(running, "fleetserve_rebalances_total", kind="assign")
    produce(producer_factory, topics.name("queries"), cases)
    outcomes = collect_outcomes(
        harness.consumers,
        [topics.name("replies"), topics.name("dead_letters")],
        len(cases),
        running,
    )
    matching = Matching(cases).run(outcomes)

    report = matching.report()
    print(  # the corpus at a glance, in -rA or on failure
        f"{len(hostile)} hostile + {len(cases) - len(hostile)} good records "
        f"(generated in {generated_s:.1f} s); {len(outcomes)} outcomes; "
        f"by category: {dict(Counter(c.category.split(':')[0] for c in hostile))}"
    )
    alive = f"(worker thread alive: {running.thread.is_alive()})"
    assert not report, f"{len(report)} kinds of wrong outcome {alive}:\n" + "\n".join(report)
    problems = outcome_problems(matching, topics.name("queries"), topics.name("replies"))
    assert not problems, "\n".join(problems)
    assert_still_the_same_worker(running, cases, assigns)


# -- poison pills the corpus leaves out, one test each --------------------------------------------
#
# Each of these stopped the worker when first written (integral floats reaching a slice or
# librdkafka, caller-written fleetserve_* headers trusted, a dead letter over the producer's
# size limit, a reply_to partition that does not exist): a restarted worker re-read the
# same uncommitted record and stopped again, so one record wedged its partition.


def run_probe(
    harness: Harness, producer_factory: ProducerFactory, cases: Sequence[Case]
) -> tuple[RunningWorker, Matching]:
    """Send ``cases`` in order to a fresh worker and match the outcomes."""
    running = harness.start_worker()
    produce(producer_factory, harness.topics.name("queries"), cases)
    topics = [harness.topics.name("replies"), harness.topics.name("dead_letters")]
    outcomes = collect_outcomes(harness.consumers, topics, len(cases), running, timeout_s=30)
    return running, Matching(cases).run(outcomes)


def good_query(bot: str, request_id: str) -> Case:
    """A plain query sent after a probe on the same key: the partition must move on."""
    query = make_query(bot, "what is my balance", request_id=request_id)
    value = orjson.dumps(query)
    return Case("good query behind it", REPLY, bot.encode(), value, (), request_id, bot)


def query_case(label: str, expected: str, query: dict[str, Any], value: bytes) -> Case:
    bot = query["bot_id"]
    return Case(label, expected, bot.encode(), value, (), query["request_id"], bot)


def assert_survived(running: RunningWorker, matching: Matching) -> None:
    report = matching.report()
    assert running.thread.is_alive(), "the worker thread died:\n" + "\n".join(report)
    assert not report, "\n".join(report)
    assert running.worker.health().ready
    assert metric(running, "fleetserve_records_total") == len(matching.cases)


def _spelled(bot: str, replies_topic: str, name: str) -> tuple[dict[str, Any], bytes]:
    query = make_query(bot, "what is my balance", request_id=f"float-{name}")
    raw = {
        "version": b"1.0",
        "top_k": b"3.0",
        "sent_at_ms": f"{query['sent_at_ms']}.0".encode(),
        "ttl_ms": b"600000.0",
        "deadline_ms": b"4.1e12",
    }
    if name in raw:
        return query, with_raw_field({**query, name: 0}, name, raw[name])
    query["reply_to"] = {"topic": replies_topic, "partition": 0}
    return query, orjson.dumps(query).replace(b'"partition":0', b'"partition":0.0')


@pytest.mark.parametrize(
    "names",
    [
        ("version", "sent_at_ms", "ttl_ms", "deadline_ms"),
        ("top_k",),
        ("reply_to.partition",),
    ],
    ids=["version-sent_at-ttl-deadline", "top_k", "reply_to.partition"],
)
def test_integral_numbers_spelled_as_floats_are_integers_and_answered(
    harness: Harness, producer_factory: ProducerFactory, names: tuple[str, ...]
) -> None:
    """JSON Schema draft-07 counts 1.0 as an integer; the validator agrees, so must the rest."""
    fleet = deploy_fleet(harness)
    bot = fleet.deployed[0]
    cases = []
    for name in names:
        query, value = _spelled(bot, fleet.replies_topic, name)
        cases.append(query_case(f"{name} spelled as a float", REPLY, query, value))
    cases.append(good_query(bot, "after-floats"))
    running, matching = run_probe(harness, producer_factory, cases)
    assert_survived(running, matching)


RESERVED_HEADERS: list[tuple[tuple[str, bytes | None], ...]] = [
    (("fleetserve_retry-attempt", b"3"), ("x-mine", b"\xff\x00")),
    (("fleetserve_retry-not-before-ms", b"9" * 20),),
    (("fleetserve_replay-attempt", b"-1"), ("fleetserve_replay-attempt", b"\xff")),
    (("fleetserve_dlt-reason", b"schema"), ("fleetserve_replay-of", None)),
    (("fleetserve_retry-attempt", b"9999999"),),
    (("fleetserve_retry-attempt", b"1"), ("fleetserve_retry-first-failure-ms", b"1")),
    (("fleetserve_retry-attempt", b"1"), ("fleetserve_retry-original-topic", b"../x")),
    (("fleetserve_retry-attempt", b"1"), ("fleetserve_retry-original-partition", b"9" * 11)),
    (("fleetserve_retry-attempt", b"1"), ("fleetserve_retry-original-timestamp", b"9" * 30)),
    (("fleetserve_replay-attempt", b"99999999999"),),
]


def test_fleetserve_headers_from_a_hostile_producer_are_kept_and_never_crash(
    harness: Harness, producer_factory: ProducerFactory
) -> None:
    """A record on the queries topic never went through the retry tier, whatever it claims.

    Its dead letter keeps every header byte for byte, names the record's own coordinates and
    counts one attempt (dead_letter.v1.json: original, source, attempts); a replay count out
    of the contract's range must not stop the worker either.
    """
    fleet = deploy_fleet(harness)
    bot = fleet.deployed[0]
    cases = [
        Case(f"headers {headers}", DECODE, bot.encode(), b"{" + str(i).encode(), headers)
        for i, headers in enumerate(RESERVED_HEADERS)
    ]
    cases.append(good_query(bot, "after-headers"))
    running, matching = run_probe(harness, producer_factory, cases)
    assert_survived(running, matching)  # matched by original bytes: headers kept as sent
    queries = harness.topics.name("queries")
    for index, outcome in matching.outcome_of.items():
        if outcome.kind == DECODE:
            dead, case = outcome.value, matching.cases[index]
            assert dead["source"]["topic"] == queries, (case.headers, dead["source"])
            assert dead["attempts"] == 1, (case.headers, dead["attempts"])


def test_a_record_near_the_brokers_size_limit_is_dead_lettered_and_the_partition_moves_on(
    harness: Harness, producer_factory: ProducerFactory
) -> None:
    """The queries topic takes records up to the broker's ~1 MB; their dead letter is 4/3 that."""
    bot = deploy_fleet(harness).deployed[0]
    big = Case("a 900 kB record", "too_large", bot.encode(), b"x" * 900_000)
    running, matching = run_probe(harness, producer_factory, [big, good_query(bot, "after-big")])
    assert_survived(running, matching)


def test_a_reply_to_partition_that_does_not_exist_does_not_stop_the_worker(
    harness: Harness, producer_factory: ProducerFactory
) -> None:
    """The query gets one outcome (the contract names none for this; any reason will do)."""
    fleet = deploy_fleet(harness)
    bot = fleet.deployed[0]
    query = make_query(bot, "what is my balance", request_id="to-nowhere")
    query["reply_to"] = {"topic": fleet.replies_topic, "partition": 2**31 - 1}
    probe = query_case("reply_to a missing partition", REPLY, query, orjson.dumps(query))
    running, matching = run_probe(harness, producer_factory, [probe, good_query(bot, "after")])
    assert running.thread.is_alive(), "the worker thread died"
    assert len(matching.outcome_of) == 2, matching.report()
