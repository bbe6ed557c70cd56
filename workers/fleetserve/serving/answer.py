"""Answer a planned batch: featurize the pass once, one ONNX run per bot (chunked), replies.

Pure apart from the model runs themselves and the injected clock: no Kafka, no store.
The work that does not depend on the bot is done once per pass, not once per bot: every
text is hashed once per hashing spec (``models/featurize_pass.py``), and the scores of
every chunk are ranked and turned into Python lists in one go.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fleetserve.core.clock import now_ms
from fleetserve.core.outcome import Failure, WorkerIdentity
from fleetserve.core.records import InboundRecord
from fleetserve.core.route import Route
from fleetserve.deadletters import reasons
from fleetserve.errors import QueryFailed
from fleetserve.models.featurize import featurize, to_padded
from fleetserve.models.featurize_pass import GroupRows, hash_pass
from fleetserve.models.runtime import predict_padded
from fleetserve.serving.decode import DecodedQuery
from fleetserve.serving.plan import BatchPlan
from fleetserve.serving.replies import (
    FALLBACK_INTENT,
    ChunkShared,
    Reply,
    ServingModel,
    build_reply,
)

__all__ = ["FALLBACK_INTENT", "AnswerContext", "BatchOutcome", "Models", "Reply", "answer_batch"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerContext:
    worker: WorkerIdentity
    replies_topic: str
    default_top_k: int = 3
    max_rows_per_run: int = 256
    clock_ms: Callable[[], int] = now_ms
    kill_on_text: str | None = None
    """Test-only fault injection: SIGKILL this process when a query's text contains it."""


@dataclass
class BatchOutcome:
    replies: list[Reply] = field(default_factory=list)
    failed: list[tuple[InboundRecord, Failure]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.replies) + len(self.failed)


Models = Mapping[Route, "ServingModel | QueryFailed"]
Chunk = tuple[ServingModel, Sequence[DecodedQuery]]


@dataclass(frozen=True, slots=True)
class _Ran:
    """One chunk's model run: its scores and what its replies share."""

    chunk: Sequence[DecodedQuery]
    probs: npt.NDArray[np.float32]
    shared: ChunkShared


def answer_batch(plan: BatchPlan, models: Models, context: AnswerContext) -> BatchOutcome:
    """Every query of ``plan`` ends in exactly one reply or one failure."""
    outcome = BatchOutcome(failed=list(plan.failed))
    chunks: list[Chunk] = []
    for route, queries in plan.groups.items():
        model = models.get(route)
        if model is None:
            model = QueryFailed(reasons.MODEL_LOAD_FAILED, "model was not loaded", phase="load")
        if isinstance(model, QueryFailed):
            failure = _failing(model, route)
            outcome.failed.extend((q.record, failure(q)) for q in queries)
            continue
        for start in range(0, len(queries), context.max_rows_per_run):
            chunks.append((model, queries[start : start + context.max_rows_per_run]))
    if context.kill_on_text is not None:
        _kill_if_asked(context.kill_on_text, [q for _model, chunk in chunks for q in chunk])
    rows = _hash_pass(chunks)
    ran = [
        done
        for index, (model, chunk) in enumerate(chunks)
        if (done := _run_chunk(model, chunk, context, outcome, rows[index] if rows else None))
    ]
    _replies(ran, context, outcome)
    return outcome


def _hash_pass(chunks: Sequence[Chunk]) -> list[GroupRows] | None:
    """Every chunk's rows of the pass's hashed texts; None sends each chunk to featurize
    itself, which keeps a failure to the chunk it concerns (an ``inference_error``)."""
    try:
        return hash_pass(
            [
                (model.metadata.featurizer, [q.query["text"] for q in chunk])
                for model, chunk in chunks
            ]
        )
    except Exception:
        logger.exception("featurizing a pass of %d chunks failed; chunk by chunk", len(chunks))
        return None


def _failing(error: QueryFailed, route: Route) -> Callable[[DecodedQuery], Failure]:
    return lambda q: q.failure(
        error.reason, error.phase, str(error), route=route, retriable=error.retriable
    )


def _run_chunk(
    model: ServingModel,
    chunk: Sequence[DecodedQuery],
    context: AnswerContext,
    out: BatchOutcome,
    rows: GroupRows | None,
) -> _Ran | None:
    started_ms = context.clock_ms()
    started = time.perf_counter()
    try:
        probs = _run(model, chunk, rows)
    except Exception as exc:  # any model failure fails this chunk only, never the worker
        message = f"{type(exc).__name__}: {exc}"
        out.failed.extend(
            (
                q.record,
                q.failure(reasons.INFERENCE_ERROR, reasons.PHASE_INFER, message, route=model.route),
            )
            for q in chunk
        )
        return None
    inference_ms = round((time.perf_counter() - started) * 1000, 3)
    return _Ran(chunk, probs, ChunkShared.of(model, context.worker, started_ms, inference_ms))


def _run(
    model: ServingModel, chunk: Sequence[DecodedQuery], rows: GroupRows | None
) -> npt.NDArray[np.float32]:
    if rows is None:
        ids, weights = to_padded(
            featurize(model.metadata.featurizer, [q.query["text"] for q in chunk])
        )
    else:
        ids, weights = rows.padded()
    probs = predict_padded(model.session, ids, weights)
    labels = len(model.metadata.labels)
    if probs.shape != (len(chunk), labels):
        raise ValueError(f"model returned shape {probs.shape}, expected {(len(chunk), labels)}")
    if not np.isfinite(probs).all():
        raise ValueError("model returned non-finite scores")
    return probs


def _replies(ran: Sequence[_Ran], context: AnswerContext, out: BatchOutcome) -> None:
    """Rank every chunk's scores at once, then one reply per query still within deadline."""
    if not ran:
        return
    now_ms = context.clock_ms()
    ranked_rows, score_rows = _ranked(ran, context.default_top_k)
    row = 0
    for done in ran:
        route = done.shared.route
        for query in done.chunk:
            if query.deadline_ms is not None and query.deadline_ms < now_ms:
                out.failed.append((query.record, _late(query, route, now_ms)))
            else:
                out.replies.append(
                    build_reply(
                        done.shared,
                        query,
                        ranked_rows[row],
                        score_rows[row],
                        context.default_top_k,
                        context.replies_topic,
                        now_ms,
                    )
                )
            row += 1


def _ranked(ran: Sequence[_Ran], default_top_k: int) -> tuple[list[list[int]], list[list[float]]]:
    """Per row of the pass, label indices best first and their scores, as Python lists.

    Chunks have as many columns as their bot has labels; they are stacked into one array
    padded with -1, which ranks after every probability, so a row's ranking is the same
    as its chunk's own. One sort and one conversion per pass instead of per chunk.
    """
    k_max = max(q.query.get("top_k", default_top_k) for done in ran for q in done.chunk)
    width = max(done.probs.shape[1] for done in ran)
    stacked = np.full((sum(len(done.chunk) for done in ran), width), -1.0, np.float32)
    row = 0
    for done in ran:
        rows, labels = done.probs.shape
        stacked[row : row + rows, :labels] = done.probs
        row += rows
    ranked = np.argsort(-stacked, axis=1, kind="stable")[:, : min(k_max, width)]
    # float32 softmax can land a hair outside [0, 1], and the contract says a probability.
    scores = np.clip(np.take_along_axis(stacked, ranked, axis=1), 0.0, 1.0)
    return ranked.tolist(), scores.tolist()


def _kill_if_asked(marker: str, queries: Sequence[DecodedQuery]) -> None:
    """Die the way a native crash in onnxruntime would: no exception, no cleanup."""
    if any(marker in q.query["text"] for q in queries):
        os.kill(os.getpid(), signal.SIGKILL)


def _late(query: DecodedQuery, route: Route, now_ms: int) -> Failure:
    assert query.deadline_ms is not None
    return query.failure(
        reasons.DEADLINE_EXCEEDED,
        reasons.PHASE_INFER,
        f"deadline passed during inference ({now_ms - query.deadline_ms} ms late); not answered",
        route=route,
    )
