"""reply_to targets are checked before any work: an allowlist, never a control or compacted
topic of any namespace."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from fleetserve.serving.targets import (
    UNCHECKED,
    CachedFacts,
    ReplyTargets,
    TopicFacts,
    default_allowlist,
)

FACTS = {
    "fleetserve.replies": TopicFacts(12, compacted=False),
    "fleetserve.replies.billing": TopicFacts(3, compacted=False),
    "fleetserve.replies.table": TopicFacts(3, compacted=True),
    "inbox.team-a": TopicFacts(1, compacted=None),
}
CONTROL = frozenset({"fleetserve.queries", "fleetserve.deployments", "fleetserve.crashes"})
TARGETS = ReplyTargets(
    allowed=default_allowlist("fleetserve.replies", ("inbox.*",)),
    control_names=CONTROL,
    facts=FACTS.get,
)


@pytest.mark.parametrize(
    ("topic", "partition", "problem"),
    [
        (None, None, None),
        ("fleetserve.replies", 11, None),
        ("fleetserve.replies.billing", None, None),
        ("inbox.team-a", 0, None),  # configured pattern; cleanup policy unknown: allowed
        ("fleetserve.replies.billing", 3, "has 3 partitions, not 4"),
        ("fleetserve.replies.gone", 0, "does not exist"),
        ("fleetserve.replies.table", None, "is a compacted topic"),
        ("fleetserve.deployments", None, "is a fleetserve control topic"),
        # Another namespace's control topic: refused even though no pattern names it.
        ("team-b.fleetserve.deployments", None, "is a fleetserve control topic"),
        ("other", None, "is not an allowed reply topic"),
        ("__consumer_offsets", 0, "is a Kafka internal topic"),
    ],
)
def test_reply_targets(topic: str | None, partition: int | None, problem: str | None) -> None:
    found = TARGETS.problem(topic, partition)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found, found


def test_a_control_topic_is_refused_even_when_a_pattern_allows_everything() -> None:
    permissive = ReplyTargets(allowed=("*",), control_names=CONTROL, facts=FACTS.get)
    assert permissive.problem("ns-1.fleetserve.queries", None) is not None
    assert permissive.problem("inbox.team-a", None) is None


def test_facts_are_remembered_and_a_silent_cluster_leaves_them_unchecked() -> None:
    asked: list[str] = []
    now = [0.0]

    def lookup(topic: str) -> TopicFacts | None:
        asked.append(topic)
        if topic == "stalled":
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return FACTS.get(topic)

    facts = CachedFacts(lookup, ttl_s=30, missing_ttl_s=5, clock=lambda: now[0])
    inbox = FACTS["inbox.team-a"]
    assert [facts("inbox.team-a"), facts("inbox.team-a"), facts("nowhere")] == [inbox, inbox, None]
    now[0] = 6.0
    assert [facts("inbox.team-a"), facts("nowhere")] == [inbox, None]
    assert asked == ["inbox.team-a", "nowhere", "nowhere"]
    assert facts("stalled") == UNCHECKED
    stalled = ReplyTargets(allowed=("stalled",), facts=facts)
    assert stalled.problem("stalled", 7) is None
