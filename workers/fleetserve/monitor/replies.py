"""On-demand reads of replies for a bot's page: recent fallbacks, and shadow confusions."""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any

import orjson

from fleetserve.config.settings import KafkaSettings
from fleetserve.kafka.scan import read_to_end
from fleetserve.shadow.join import join_replies
from fleetserve.shadow.report import read_reply_facts

RECENT_S = 3_600


def recent_fallbacks(
    kafka: KafkaSettings, topic: str, bot_id: str, limit: int = 20
) -> list[dict[str, Any]]:
    """The bot's latest fallback replies of the last hour: what to relabel first."""
    found: deque[dict[str, Any]] = deque(maxlen=limit)
    key = bot_id.encode()
    since_ms = int(time.time() * 1000) - RECENT_S * 1000
    for record in read_to_end(kafka, [topic], since_ms=since_ms):
        if record.key != key or record.value is None:
            continue
        try:
            reply = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(reply, dict) and reply.get("fallback") is True:
            found.append(
                {
                    "request_id": reply.get("request_id"),
                    "text": reply.get("text"),
                    "confidence": reply.get("confidence"),
                    "top_k": reply.get("top_k"),
                    "version": (reply.get("model") or {}).get("version"),
                    "produced_at_ms": reply.get("produced_at_ms"),
                }
            )
    return list(reversed(found))


def confusions(
    kafka: KafkaSettings, real_topic: str, shadow_topic: str, bot_id: str, top: int = 10
) -> dict[str, Any]:
    """Where the shadow (beta) model disagrees with the real one, most frequent first."""
    readings = read_reply_facts(kafka, [real_topic, shadow_topic], frozenset({bot_id}), 30.0)
    joined = join_replies(readings[real_topic].replies, readings[shadow_topic].replies)
    pairs = Counter(
        (pair.real.intent, pair.shadow.intent) for pair in joined.pairs if not pair.agrees
    )
    agreed = sum(pair.agrees for pair in joined.pairs)
    return {
        "joined": len(joined.pairs),
        "agreement_rate": agreed / len(joined.pairs) if joined.pairs else None,
        "top": [
            {"real": real, "shadow": shadow, "count": count}
            for (real, shadow), count in pairs.most_common(top)
        ],
    }
