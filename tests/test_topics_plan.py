"""The pure plan: what `topics apply` would create and which differences it reports."""

from __future__ import annotations

from types import MappingProxyType

from fleetserve.topics.plan import ObservedTopic, plan_topics
from fleetserve.topics.spec import TopicSpec


def spec(name: str, partitions: int = 3, **configs: str) -> TopicSpec:
    return TopicSpec(
        role=name,
        name=name,
        partitions=partitions,
        replication_factor=1,
        configs=MappingProxyType({"cleanup.policy": "delete", **configs}),
    )


def observed(name: str, partitions: int = 3, replication: int = 1, **configs: str) -> ObservedTopic:
    return ObservedTopic(name, partitions, replication, {"cleanup.policy": "delete", **configs})


def test_missing_topics_are_created_and_matching_ones_left_alone() -> None:
    plan = plan_topics({"a": spec("a"), "b": spec("b")}, {"a": observed("a")})
    assert [s.name for s in plan.create] == ["b"]
    assert plan.unchanged == ("a",)
    assert plan.drift == ()


def test_every_difference_is_reported() -> None:
    declared = {"a": spec("a", partitions=12, **{"retention.ms": "1000"})}
    actual = {"a": observed("a", partitions=3, replication=2)}
    plan = plan_topics(declared, actual)
    assert plan.create == ()
    assert plan.unchanged == ()
    found = {(d.setting, d.declared, d.actual) for d in plan.drift}
    assert found == {
        ("partitions", "12", "3"),
        ("replication_factor", "1", "2"),
        ("retention.ms", "1000", "(unset)"),
    }
    assert "a: partitions is 3, declared 12" in [str(d) for d in plan.drift]


def test_undeclared_configs_and_topics_are_not_drift() -> None:
    actual = {"a": ObservedTopic("a", 3, 1, {"cleanup.policy": "delete", "segment.ms": "5"})}
    actual["other"] = observed("other")
    plan = plan_topics({"a": spec("a")}, actual)
    assert plan.drift == ()
    assert plan.unchanged == ("a",)
