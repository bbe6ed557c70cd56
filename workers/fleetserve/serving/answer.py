"""Answer a planned batch: one batched ONNX run per bot (chunked), replies and failures out.

Pure apart from the model run itself and the injected clock: no Kafka, no store.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from fleetserve.core.clock import now_ms
from fleetserve.core.outcome import Failure, WorkerIdentity
from fleetserve.core.records import InboundRecord
from fleetserve.core.route import Route
from fleetserve.deadletters import reasons
from fleetserve.errors import QueryFailed
from fleetserve.models.metadata import ModelMetadata
from fleetserve.models.runtime import predict
from fleetserve.serving.decode import DecodedQuery
from fleetserve.serving.plan import BatchPlan

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


@dataclass(frozen=True)
class AnswerContext:
    worker: WorkerIdentity
    replies_topic: str
    default_top_k: int = 3
    max_rows_per_run: int = 256
    clock_ms: Callable[[], int] = now_ms
    kill_on_text: str | None = None
    """Test-only fault injection: SIGKILL this process when a query's text contains it."""


@dataclass(frozen=True, slots=True)
class Reply:
    record: InboundRecord
    topic: str
    partition: int | None
    value: dict[str, Any]


@dataclass
class BatchOutcome:
    replies: list[Reply] = field(default_factory=list)
    failed: list[tuple[InboundRecord, Failure]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.replies) + len(self.failed)


Models = Mapping[Route, "ServingModel | QueryFailed"]


def answer_batch(plan: BatchPlan, models: Models, context: AnswerContext) -> BatchOutcome:
    """Every query of ``plan`` ends in exactly one reply or one failure."""
    outcome = BatchOutcome(failed=list(plan.failed))
    for route, queries in plan.groups.items():
        model = models.get(route)
        if model is None:
            model = QueryFailed(reasons.MODEL_LOAD_FAILED, "model was not loaded", phase="load")
        if isinstance(model, QueryFailed):
            failure = _failing(model, route)
            outcome.failed.extend((q.record, failure(q)) for q in queries)
            continue
        for start in range(0, len(queries), context.max_rows_per_run):
            chunk = queries[start : start + context.max_rows_per_run]
            _answer_chunk(model, chunk, context, outcome)
    return outcome


def _failing(error: QueryFailed, route: Route) -> Callable[[DecodedQuery], Failure]:
    return lambda q: q.failure(
        error.reason, error.phase, str(error), route=route, retriable=error.retriable
    )


def _answer_chunk(
    model: ServingModel, chunk: Sequence[DecodedQuery], context: AnswerContext, out: BatchOutcome
) -> None:
    if context.kill_on_text is not None:
        _kill_if_asked(context.kill_on_text, chunk)
    started_ms = context.clock_ms()
    started = time.perf_counter()
    try:
        probs = _run(model, [q.query["text"] for q in chunk])
    except Exception as exc:  # any model failure fails this chunk only, never the worker
        message = f"{type(exc).__name__}: {exc}"
        out.failed.extend(
            (
                q.record,
                q.failure(reasons.INFERENCE_ERROR, reasons.PHASE_INFER, message, route=model.route),
            )
            for q in chunk
        )
        return
    inference_ms = (time.perf_counter() - started) * 1000
    now_ms = context.clock_ms()
    k_max = max(q.query.get("top_k", context.default_top_k) for q in chunk)
    ranked = np.argsort(-probs, axis=1, kind="stable")[:, : min(k_max, probs.shape[1])]
    # One conversion per chunk instead of one numpy scalar per score: float32 softmax can
    # land a hair outside [0, 1], and the contract says a probability.
    scores = np.clip(np.nan_to_num(np.take_along_axis(probs, ranked, axis=1)), 0.0, 1.0)
    ranked_rows, score_rows = ranked.tolist(), scores.tolist()
    timing = {"started_ms": started_ms, "inference_ms": inference_ms, "now_ms": now_ms}
    for row, query in enumerate(chunk):
        if query.deadline_ms is not None and query.deadline_ms < now_ms:
            out.failed.append((query.record, _late(query, model.route, now_ms)))
            continue
        top = (ranked_rows[row], score_rows[row])
        out.replies.append(_reply(model, query, top, timing, context))


def _kill_if_asked(marker: str, chunk: Sequence[DecodedQuery]) -> None:
    """Die the way a native crash in onnxruntime would: no exception, no cleanup."""
    if any(marker in q.query["text"] for q in chunk):
        os.kill(os.getpid(), signal.SIGKILL)


def _run(model: ServingModel, texts: list[str]) -> npt.NDArray[np.float32]:
    probs = predict(model.session, model.metadata.featurizer, texts)
    labels = len(model.metadata.labels)
    if probs.shape != (len(texts), labels):
        raise ValueError(f"model returned shape {probs.shape}, expected {(len(texts), labels)}")
    if not np.isfinite(probs).all():
        raise ValueError("model returned non-finite scores")
    return probs


def _source(query: DecodedQuery) -> dict[str, Any]:
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


def _late(query: DecodedQuery, route: Route, now_ms: int) -> Failure:
    assert query.deadline_ms is not None
    return query.failure(
        reasons.DEADLINE_EXCEEDED,
        reasons.PHASE_INFER,
        f"deadline passed during inference ({now_ms - query.deadline_ms} ms late); not answered",
        route=route,
    )


def _reply(
    model: ServingModel,
    query: DecodedQuery,
    ranked_scores: tuple[list[int], list[float]],
    timing: Mapping[str, float],
    context: AnswerContext,
) -> Reply:
    q = query.query
    labels = model.metadata.labels
    ranked, scores = ranked_scores
    k = min(q.get("top_k", context.default_top_k), len(ranked))
    top = [{"intent": labels[i], "score": scores[n]} for n, i in enumerate(ranked[:k])]
    confidence = scores[0]
    fallback = confidence < model.metadata.fallback_threshold
    sent = q["sent_at_ms"]
    route = model.route
    value: dict[str, Any] = {
        "version": 1,
        "request_id": q["request_id"],
        "bot_id": q["bot_id"],
        "stage": route.stage,
        "model": {
            "version": route.model_version,
            "sha256": route.sha256,
            "quantization": model.quantization,
        },
        "intent": FALLBACK_INTENT if fallback else labels[ranked[0]],
        "confidence": confidence,
        "top_k": top,
        "fallback": fallback,
        "text": q["text"] if route.include_query_text else None,
        "timings": {
            "queued_ms": max(0.0, timing["started_ms"] - sent),
            "inference_ms": round(timing["inference_ms"], 3),
            "total_ms": max(0.0, timing["now_ms"] - sent),
        },
        "worker": context.worker.as_ref(),
        "source": _source(query),
        "produced_at_ms": int(timing["now_ms"]),
    }
    if "trace" in q:
        value["trace"] = q["trace"]
    reply_to = q.get("reply_to") or {}
    return Reply(
        query.record, reply_to.get("topic", context.replies_topic), reply_to.get("partition"), value
    )
