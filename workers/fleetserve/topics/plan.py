"""Compare declared topics with what the cluster has. Pure: no Kafka here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetserve.topics.spec import TopicSpec


@dataclass(frozen=True)
class ObservedTopic:
    """A topic as the cluster describes it. ``configs`` holds only what it reported."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Drift:
    topic: str
    setting: str
    declared: str
    actual: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.setting} is {self.actual}, declared {self.declared}"


@dataclass(frozen=True)
class TopicPlan:
    create: tuple[TopicSpec, ...]
    unchanged: tuple[str, ...]
    drift: tuple[Drift, ...]


def plan_topics(
    declared: Mapping[str, TopicSpec], observed: Mapping[str, ObservedTopic]
) -> TopicPlan:
    """What `topics apply` does: create the missing, report every difference in the rest."""
    create: list[TopicSpec] = []
    unchanged: list[str] = []
    drift: list[Drift] = []
    for name, spec in sorted(declared.items()):
        actual = observed.get(name)
        if actual is None:
            create.append(spec)
            continue
        differences = topic_drift(spec, actual)
        drift.extend(differences)
        if not differences:
            unchanged.append(name)
    return TopicPlan(tuple(create), tuple(unchanged), tuple(drift))


def topic_drift(spec: TopicSpec, actual: ObservedTopic) -> list[Drift]:
    found: list[Drift] = []
    if actual.partitions != spec.partitions:
        found.append(Drift(spec.name, "partitions", str(spec.partitions), str(actual.partitions)))
    if actual.replication_factor != spec.replication_factor:
        found.append(
            Drift(
                spec.name,
                "replication_factor",
                str(spec.replication_factor),
                str(actual.replication_factor),
            )
        )
    for key, value in sorted(spec.configs.items()):
        current = actual.configs.get(key)
        if current != value:
            found.append(Drift(spec.name, key, value, "(unset)" if current is None else current))
    return found
