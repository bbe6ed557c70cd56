"""Shadow reports: the pure join and per-bot aggregation, and `fleetserve shadow-report` over
two topics filled through Kafka transactions (as workers write them)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from fleetserve.cli.main import cli
from fleetserve.cli.shadow_cmd import report_row
from fleetserve.config.settings import KafkaSettings
from fleetserve.contracts.codec import encode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.kafka.clients import producer
from fleetserve.shadow.join import ReplyFacts, ShadowStats, aggregate, join_replies, reply_facts
from support.builders import SHA, reply_value


def facts(
    bot_id: str,
    request_id: str,
    intent: str,
    confidence: float,
    *,
    fallback: bool = False,
    version: str = "v1",
) -> ReplyFacts:
    return ReplyFacts(bot_id, request_id, intent, confidence, fallback, version)


def reply(fact: ReplyFacts, *, group: str = "real") -> dict[str, Any]:
    """A full, schema-valid reply v1 carrying ``fact``."""
    return reply_value(
        fact.bot_id,
        request_id=fact.request_id,
        intent=fact.intent,
        confidence=fact.confidence,
        fallback=fact.fallback,
        stage="real" if group == "real" else "beta",
        version=fact.model_version,
        text=None,
        group=group,
        source=("fleetserve.queries", 0, 0),
    )


# -- pure: facts, join, aggregate --------------------------------------------------------------


def test_reply_facts_takes_what_the_comparison_needs() -> None:
    fact = facts("bank", "r1", "block_card", 0.8, fallback=True, version="v9")
    assert reply_facts(reply(fact)) == fact
    assert reply_facts({**reply(fact), "confidence": 1}) == facts(
        "bank", "r1", "block_card", 1.0, fallback=True, version="v9"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"request_id": None},
        {"intent": 3},
        {"confidence": "0.5"},
        {"confidence": True},
        {"fallback": "no"},
        {"model": None},
        {"model": {"sha256": SHA}},
    ],
)
def test_reply_facts_refuses_unusable_replies(change: dict[str, Any]) -> None:
    assert reply_facts({**reply(facts("bank", "r1", "x", 0.5)), **change}) is None


def test_join_pairs_by_bot_and_request_id_and_keeps_the_unmatched() -> None:
    real = [facts("a", "1", "x", 0.5), facts("a", "2", "x", 0.5), facts("b", "1", "y", 0.5)]
    shadow = [facts("a", "1", "x", 0.6), facts("b", "1", "z", 0.4), facts("b", "9", "z", 0.4)]
    joined = join_replies(real, shadow)
    assert [(p.real.key, p.shadow.key) for p in joined.pairs] == [
        (("a", "1"), ("a", "1")),
        (("b", "1"), ("b", "1")),
    ]
    assert [r.key for r in joined.real_only] == [("a", "2")]
    assert [s.key for s in joined.shadow_only] == [("b", "9")]


def test_same_request_id_for_two_bots_is_two_queries() -> None:
    joined = join_replies([facts("a", "1", "x", 0.5)], [facts("b", "1", "x", 0.5)])
    assert joined.pairs == ()
    assert len(joined.real_only) == len(joined.shadow_only) == 1


def test_a_query_answered_twice_counts_once_with_its_last_answer() -> None:
    joined = join_replies(
        [facts("a", "1", "old", 0.1), facts("a", "1", "new", 0.7)], [facts("a", "1", "new", 0.9)]
    )
    (pair,) = joined.pairs
    assert pair.real.intent == "new"
    assert pair.agrees


def test_aggregate_per_bot_and_total() -> None:
    real = [
        facts("a", "1", "x", 0.50, version="r1"),
        facts("a", "2", "y", 0.60, version="r1"),
        facts("a", "3", "x", 0.20, fallback=True, version="r1"),
        facts("a", "4", "x", 0.90, version="r2"),
        facts("b", "1", "p", 0.40, version="rb"),
        facts("b", "2", "q", 0.40, version="rb"),  # no shadow answer
    ]
    shadow = [
        facts("a", "1", "x", 0.70, version="s1"),  # agree, +0.2
        facts("a", "2", "z", 0.50, version="s1"),  # disagree, -0.1
        facts("a", "3", "x", 0.30, fallback=True, version="s1"),  # agree, +0.1
        facts("a", "4", "x", 0.50, fallback=True, version="s1"),  # agree, -0.4
        facts("a", "9", "x", 0.50, version="s2"),  # no real answer
        facts("b", "1", "q", 0.45, version="sb"),  # disagree, +0.05
    ]
    report = aggregate(join_replies(real, shadow))
    a, b = report.bots
    assert (a.bot_id, a.joined, a.agreed, a.real_only, a.shadow_only) == ("a", 4, 3, 0, 1)
    assert a.agreement_rate == pytest.approx(0.75)
    assert a.mean_confidence_delta == pytest.approx((0.2 - 0.1 + 0.1 - 0.4) / 4)
    assert a.mean_abs_confidence_delta == pytest.approx((0.2 + 0.1 + 0.1 + 0.4) / 4)
    assert a.max_abs_confidence_delta == pytest.approx(0.4)
    assert a.real_fallback_rate == pytest.approx(0.25)
    assert a.shadow_fallback_rate == pytest.approx(0.5)
    assert (a.real_versions, a.shadow_versions) == (("r1", "r2"), ("s1", "s2"))
    assert (b.bot_id, b.joined, b.agreed, b.real_only, b.shadow_only) == ("b", 1, 0, 1, 0)
    assert b.agreement_rate == 0.0
    assert b.max_abs_confidence_delta == pytest.approx(0.05)
    total = report.total
    assert (total.bot_id, total.joined, total.agreed) == (None, 5, 3)
    assert total.agreement_rate == pytest.approx(0.6)
    assert total.max_abs_confidence_delta == pytest.approx(0.4)
    assert (total.real_only, total.shadow_only) == (1, 1)
    assert total.real_versions == ("r1", "r2", "rb")


def test_a_bot_with_nothing_joined_has_no_rates() -> None:
    report = aggregate(join_replies([facts("a", "1", "x", 0.5)], []))
    (only,) = report.bots
    assert only.joined == 0
    assert only.agreement_rate is None
    assert only.mean_abs_confidence_delta is None
    assert only.max_abs_confidence_delta is None
    assert only.real_fallback_rate is None
    row = report_row(only)
    assert (row["agree"], row["max |d conf|"], row["shadow versions"]) == (None, None, None)
    assert aggregate(join_replies([], [])).bots == ()


def test_report_row_formats_rates_and_long_version_lists() -> None:
    stats = ShadowStats(
        bot_id=None,
        joined=8,
        agreed=7,
        agreement_rate=0.875,
        mean_confidence_delta=0.01,
        mean_abs_confidence_delta=0.0123,
        max_abs_confidence_delta=0.5,
        real_fallback_rate=0.125,
        shadow_fallback_rate=0.0,
        real_versions=("v1", "v2", "v3", "v4"),
        shadow_versions=("s1",),
        real_only=2,
        shadow_only=0,
    )
    row = report_row(stats)
    assert row["bot"] == "(total)"
    assert (row["agree"], row["mean |d conf|"], row["fallback shadow"]) == (
        "87.5%",
        "0.012",
        "0.0%",
    )
    assert row["real versions"] == "v1,v2 +2"


# -- `fleetserve shadow-report` against the real broker -------------------------------------


def publish_transactionally(
    kafka: KafkaSettings, topic: str, replies: list[ReplyFacts], group: str
) -> None:
    """Two transactions, so the partitions end in commit markers as a worker's do."""
    writer = producer(
        kafka,
        {"transactional.id": f"shadow-test-{uuid.uuid4().hex}", "partitioner": "murmur2_random"},
    )
    writer.init_transactions(10)
    half = len(replies) // 2
    for batch in (replies[:half], replies[half:]):
        writer.begin_transaction()
        for fact in batch:
            value = encode(MessageKind.REPLY, reply(fact, group=group))
            writer.produce(topic, key=fact.bot_id.encode(), value=value)
        writer.commit_transaction(10)


def report(bootstrap: str, prefix: str, *args: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["--bootstrap", bootstrap, "--topic-prefix", prefix, "shadow-report", *args],
        catch_exceptions=False,
    )


@pytest.mark.kafka
def test_shadow_report_over_two_topics(
    kafka_bootstrap: str, kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    prefix = f"shadow-{uuid.uuid4().hex[:8]}."
    real_topic = topic_factory(name=f"{prefix}fleetserve.replies", partitions=3)
    shadow_topic = topic_factory(name=f"{prefix}fleetserve.replies-shadow-beta", partitions=3)
    real = [facts("alpha", str(i), "greet", 0.9, version="a-real") for i in range(8)]
    real += [facts("bravo", str(i), "bye", 0.6, version="b-real") for i in range(3)]
    shadow = [
        facts("alpha", str(i), "greet" if i < 6 else "other", 0.8, version="a-beta")
        for i in range(8)
    ]
    shadow += [facts("bravo", "0", "hello", 0.7, fallback=True, version="b-beta")]
    shadow += [facts("charlie", "0", "x", 0.5, version="c-beta")]
    publish_transactionally(kafka_settings, real_topic, real, "real")
    publish_transactionally(kafka_settings, shadow_topic, shadow, "shadow-beta")

    # --real-topic defaults to the declared replies topic under the prefix.
    as_json = report(kafka_bootstrap, prefix, "--shadow-topic", shadow_topic, "--json")
    assert as_json.exit_code == 0, as_json.output
    document = orjson.loads(as_json.stdout)
    assert (document["real_topic"], document["shadow_topic"]) == (real_topic, shadow_topic)
    rows = {row["bot_id"]: row for row in document["bots"]}
    assert set(rows) == {"alpha", "bravo", "charlie"}
    alpha, bravo, charlie = rows["alpha"], rows["bravo"], rows["charlie"]
    assert (alpha["joined"], alpha["agreed"], alpha["agreement_rate"]) == (8, 6, 0.75)
    assert alpha["max_abs_confidence_delta"] == pytest.approx(0.1)
    assert (alpha["real_versions"], alpha["shadow_versions"]) == (["a-real"], ["a-beta"])
    assert (bravo["joined"], bravo["agreement_rate"], bravo["real_only"]) == (1, 0.0, 2)
    assert bravo["shadow_fallback_rate"] == 1.0
    assert (charlie["joined"], charlie["shadow_only"]) == (0, 1)
    assert (document["total"]["joined"], document["total"]["agreed"]) == (9, 6)

    table = report(
        kafka_bootstrap,
        prefix,
        "--shadow-topic",
        shadow_topic,
        "--real-topic",
        real_topic,
        "--bot",
        "alpha",
    )
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[1].split()[:3] == ["bot", "joined", "agree"]
    assert lines[2].split()[:3] == ["alpha", "8", "75.0%"]
    assert lines[3].split()[:3] == ["(total)", "8", "75.0%"]
    assert len(lines) == 4

    same = report(kafka_bootstrap, prefix, "--shadow-topic", real_topic)
    assert same.exit_code == 2
