"""reply_to targets are checked before any work: a refused reply would fail the whole pass."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from fleetserve.serving.processor import reply_target_problem
from fleetserve.serving.targets import UNCHECKED, PartitionCounts

COUNTS = {"inbox": 3}


@pytest.mark.parametrize(
    ("topic", "partition", "problem"),
    [
        (None, None, None),
        ("inbox", None, None),
        ("inbox", 2, None),
        ("inbox", 3, "inbox has 3 partitions, not 4"),
        ("nowhere", 0, "nowhere does not exist"),
        ("queries", None, "queries is a fleetserve control topic"),
    ],
)
def test_reply_targets(topic: str | None, partition: int | None, problem: str | None) -> None:
    found = reply_target_problem(topic, partition, {"queries"}, COUNTS.get)
    assert found == problem if problem is None else problem in (found or "")


def test_counts_are_remembered_and_a_silent_cluster_leaves_them_unchecked() -> None:
    asked: list[str] = []
    now = [0.0]

    def lookup(topic: str) -> int | None:
        asked.append(topic)
        if topic == "stalled":
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return COUNTS.get(topic)

    counts = PartitionCounts(lookup, ttl_s=30, missing_ttl_s=5, clock=lambda: now[0])
    assert [counts("inbox"), counts("inbox"), counts("nowhere")] == [3, 3, None]
    now[0] = 6.0
    assert [counts("inbox"), counts("nowhere")] == [3, None]
    assert asked == ["inbox", "nowhere", "nowhere"]
    assert counts("stalled") == UNCHECKED
    assert reply_target_problem("stalled", 7, (), counts) is None
