"""What a topic should look like once an environment's overrides are applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# Roles the code depends on; a topic file must declare each of them.
REQUIRED_ROLES = (
    "queries",
    "replies",
    "dead_letters",
    "retry",
    "replays",
    "deployments",
    "crashes",
    "models",
    "model_index",
    "bot_stats",
)
# Every role but replies: fleetserve's own bookkeeping, never a reply_to target.
CONTROL_ROLES = tuple(role for role in REQUIRED_ROLES if role != "replies")


@dataclass(frozen=True)
class TopicSpec:
    role: str
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""


@dataclass(frozen=True)
class TopicSet:
    """The resolved topics of one environment, by role."""

    env: str
    topics: Mapping[str, TopicSpec]
    prefix: str = ""

    def name(self, role: str) -> str:
        return self.topics[role].name

    def base_name(self, role: str) -> str:
        """The declared name without this set's namespace prefix."""
        return self.name(role).removeprefix(self.prefix)

    def by_name(self) -> dict[str, TopicSpec]:
        return {spec.name: spec for spec in self.topics.values()}


def resolve(document: Mapping[str, Any], env: str, prefix: str = "") -> TopicSet:
    """Apply one environment's overrides to a validated topic document. Pure."""
    overrides = document["environments"][env]
    per_topic = overrides.get("topics", {})
    topics = {
        role: _resolve_topic(role, body, overrides, per_topic.get(role, {}), prefix)
        for role, body in document["topics"].items()
    }
    return TopicSet(env=env, topics=MappingProxyType(topics), prefix=prefix)


def _resolve_topic(
    role: str,
    body: Mapping[str, Any],
    env_overrides: Mapping[str, Any],
    topic_overrides: Mapping[str, Any],
    prefix: str,
) -> TopicSpec:
    merged = {**body, **topic_overrides}
    replication = env_overrides.get("replication_factor", merged["replication_factor"])
    min_isr = env_overrides.get("min_insync_replicas", merged.get("min_insync_replicas"))
    configs: dict[str, str] = {"cleanup.policy": merged["cleanup_policy"]}
    if "retention_ms" in merged:
        configs["retention.ms"] = str(merged["retention_ms"])
    if min_isr is not None:
        configs["min.insync.replicas"] = str(min_isr)
    configs.update(body.get("config", {}))
    configs.update(topic_overrides.get("config", {}))
    return TopicSpec(
        role=role,
        name=prefix + merged["name"],
        partitions=merged["partitions"],
        replication_factor=replication,
        configs=MappingProxyType(configs),
        description=merged.get("description", ""),
    )
