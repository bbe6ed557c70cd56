"""A reply v1 value, built from what one chunk's replies share and each query's own part."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from fleetserve.core.outcome import WorkerIdentity
from fleetserve.core.records import InboundRecord
from fleetserve.core.route import Route
from fleetserve.models.metadata import ModelMetadata
from fleetserve.serving.decode import DecodedQuery
from fleetserve.stats.facts import OutcomeFacts
from fleetserve.stats.summary import StatsKey

FALLBACK_INTENT: Final = "fallback"
"""The intent of a reply whose confidence is under the bot's calibrated threshold."""


class ServingModel(Protocol):
    """What answering needs from a loaded model (the cache's LoadedModel has it)."""

    @property
    def route(self) -> Route: ...
    @property
    def session(self) -> Any: ...
    @property
    def metadata(self) -> ModelMetadata: ...
    @property
    def quantization(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Reply:
    record: InboundRecord
    topic: str
    partition: int | None
    value: dict[str, Any]
    facts: OutcomeFacts | None = None
    """What the reply adds to its bot's statistics (stats/facts.py), known while building it."""


@dataclass(frozen=True, slots=True)
class ChunkShared:
    """What every reply of one chunk (one bot, one model run) has in common."""

    route: Route
    labels: Sequence[str]
    threshold: float
    model: dict[str, str]
    worker: dict[str, str]
    stats_key: StatsKey
    started_ms: int
    inference_ms: float

    @classmethod
    def of(
        cls, model: ServingModel, worker: WorkerIdentity, started_ms: int, inference_ms: float
    ) -> ChunkShared:
        route = model.route
        return cls(
            route,
            model.metadata.labels,
            model.metadata.fallback_threshold,
            {
                "version": route.model_version,
                "sha256": route.sha256,
                "quantization": model.quantization,
            },
            worker.as_ref(),
            StatsKey(route.bot_id, route.model_version, route.stage),
            started_ms,
            inference_ms,
        )


def build_reply(
    shared: ChunkShared,
    query: DecodedQuery,
    ranked: list[int],
    scores: list[float],
    top_k: int,
    replies_topic: str,
    now_ms: int,
) -> Reply:
    """The reply to ``query``: ``ranked`` label indices best first, with their ``scores``."""
    q = query.query
    labels = shared.labels
    k = min(q.get("top_k", top_k), len(labels), len(ranked))
    top = [{"intent": labels[i], "score": scores[n]} for n, i in enumerate(ranked[:k])]
    confidence = scores[0]
    fallback = confidence < shared.threshold
    sent = q["sent_at_ms"]
    route = shared.route
    total_ms = max(0, now_ms - sent)
    # The model and worker objects are shared by the chunk's replies: orjson writes each
    # out every time, and nothing mutates them.
    value: dict[str, Any] = {
        "version": 1,
        "request_id": q["request_id"],
        "bot_id": q["bot_id"],
        "stage": route.stage,
        "model": shared.model,
        "intent": FALLBACK_INTENT if fallback else labels[ranked[0]],
        "confidence": confidence,
        "top_k": top,
        "fallback": fallback,
        "text": q["text"] if route.include_query_text else None,
        "timings": {
            "queued_ms": max(0, shared.started_ms - sent),
            "inference_ms": shared.inference_ms,
            "total_ms": total_ms,
        },
        "worker": shared.worker,
        "source": source_of(query),
        "produced_at_ms": now_ms,
    }
    if "trace" in q:
        value["trace"] = q["trace"]
    facts = OutcomeFacts(
        shared.stats_key,
        confidence=float(confidence),
        margin=scores[0] - scores[1] if k > 1 else None,
        fallback=fallback,
        latency_ms=float(total_ms),
        inference_ms=float(shared.inference_ms),
    )
    reply_to = q.get("reply_to")
    if reply_to is None:
        return Reply(query.record, replies_topic, None, value, facts)
    topic = reply_to.get("topic", replies_topic)
    return Reply(query.record, topic, reply_to.get("partition"), value, facts)


def source_of(query: DecodedQuery) -> dict[str, Any]:
    """Where the query was first read, and which try of it this is."""
    origin = query.origin
    if origin is None:
        record = query.record
        return {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "attempt": 1,
        }
    return {
        "topic": origin.topic,
        "partition": origin.partition,
        "offset": origin.offset,
        "attempt": origin.attempt,
    }
