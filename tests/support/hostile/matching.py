"""Send a hostile corpus to a real worker and match every committed outcome to its record."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from confluent_kafka import KafkaError, Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fleetserve.client.query import make_query
from fleetserve.contracts.codec import validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.deadletters.build import dead_letter_key
from support.bots import BuiltBots
from support.hostile.cases import (
    BOT_ID,
    DECODE,
    NO_DEPLOYMENT,
    PHASES,
    REPLY,
    UNKNOWN_BOT,
    Case,
    Fleet,
)
from support.hostile.corpus import plan
from support.hostile.valid_cases import duplicate_request_ids
from support.kafka import ConsumerFactory, ProducerFactory
from support.serving import Harness, RunningWorker

DUPLICATED = 100  # exact copies of random corpus records, sent again

T = TypeVar("T")
GOOD_PER_BOT = 300
ROUTE_REASONS = frozenset({UNKNOWN_BOT, NO_DEPLOYMENT, "deadline_exceeded"})


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
