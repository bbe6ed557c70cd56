"""`topics apply`: observe, plan, create the missing, report drift. Idempotent."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient

from fleetserve.topics.admin import create_topics, observe_topics
from fleetserve.topics.plan import Drift, plan_topics
from fleetserve.topics.spec import TopicSet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyReport:
    created: tuple[str, ...]
    unchanged: tuple[str, ...]
    drift: tuple[Drift, ...]

    @property
    def in_sync(self) -> bool:
        return not self.drift


def apply_topics(admin: AdminClient, topics: TopicSet, timeout_s: float = 30.0) -> ApplyReport:
    declared = topics.by_name()
    plan = plan_topics(declared, observe_topics(admin, timeout_s))
    created = create_topics(admin, plan.create, timeout_s)
    logger.debug("created topics: %s", created)
    # Check again after creating: a topic made concurrently by someone else may differ.
    final = plan_topics(declared, observe_topics(admin, timeout_s))
    logger.debug("topic drift: %s", [str(d) for d in final.drift])
    unchanged = tuple(name for name in final.unchanged if name not in created)
    return ApplyReport(tuple(created), unchanged, final.drift)
