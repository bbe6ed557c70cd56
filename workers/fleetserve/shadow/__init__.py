"""Shadow deployments: how a shadow group's replies compare with the real group's, per bot."""

from fleetserve.shadow.join import (
    JoinedPair,
    JoinResult,
    ReplyFacts,
    ShadowReport,
    ShadowStats,
    aggregate,
    join_replies,
    reply_facts,
)

__all__ = [
    "JoinResult",
    "JoinedPair",
    "ReplyFacts",
    "ShadowReport",
    "ShadowStats",
    "aggregate",
    "join_replies",
    "reply_facts",
]
