"""The worker's pass taken apart: CPU per reply of each stage run alone, on the same passes.

``hotpath_bench.py`` times whole passes; its cProfile shares inflate the stages made of
many small Python calls. Here each stage runs by itself over inputs the previous stage
already produced, so its time is its own and nothing else's:

- decode: ``decode_query`` of every record (msgspec proof, key check);
- featurize: every chunk's texts hashed once per pass (``hash_pass``), and padded;
- onnxruntime: one ``predict_padded`` per chunk, on the padded inputs (each call's texts
  padded to its longest: ``padded_per_real_ngram`` says how much work that adds);
- replies: rank every chunk's scores, build each reply and encode it.

Their sum is what a pass costs with no bookkeeping at all (no fair share, routing, pins,
offsets, statistics facts or dead-letter checks): a floor for the worker's hot path with
the stages it has today. The stages are the pass's own functions (``serving/answer.py``),
called one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetserve.core.records import InboundRecord
from fleetserve.models.featurize_pass import GroupRows, hash_pass
from fleetserve.models.runtime import predict_padded
from fleetserve.serving.answer import (  # the pass's own stages, timed one at a time
    BatchOutcome,
    _Ran,
    _replies,
)
from fleetserve.serving.decode import DecodedQuery, decode_query
from fleetserve.serving.plan import plan_batch
from fleetserve.serving.processor import BatchProcessor
from fleetserve.serving.replies import ChunkShared, ServingModel
from fleetserve_bench.procstat import best_cpu_seconds

Chunk = tuple[ServingModel, list[DecodedQuery]]
Padded = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]
# The replies' inference_ms field is copied, not computed, so any value costs the same.
PLACEHOLDER_INFERENCE_MS = 0.1


@dataclass
class _Pass:
    records: Sequence[InboundRecord]
    queries: list[DecodedQuery]
    chunks: list[Chunk]
    rows: list[GroupRows]
    padded: list[Padded]
    probs: list[npt.NDArray[np.float32]]


def stage_costs(
    proc: BatchProcessor, records: Sequence[InboundRecord], pass_size: int, repeats: int = 3
) -> dict[str, Any]:
    """CPU-us per reply of each stage alone, their sum, and the calls per reply."""
    passes = _prepare(proc, records, pass_size)
    replies = sum(len(p.queries) for p in passes)
    stages: dict[str, Callable[[], object]] = {
        "decode + validate": lambda: [_decode(proc, p.records) for p in passes],
        "featurize + pad": lambda: [_featurize(p.chunks) for p in passes],
        "onnxruntime run": lambda: [_infer(p.chunks, p.padded) for p in passes],
        "rank, build, encode replies": lambda: [_reply(proc, p) for p in passes],
    }
    per_reply = {
        name: round(best_cpu_seconds(call, repeats) / replies * 1e6, 2)
        for name, call in stages.items()
    }
    chunks = sum(len(p.chunks) for p in passes)
    padded = sum(ids.size for p in passes for ids, _weights in p.padded)
    real = sum(
        int(r.hashed.indptr[r.stop] - r.hashed.indptr[r.start]) for p in passes for r in p.rows
    )
    return {
        "cpu_us_per_reply": per_reply,
        "sum_cpu_us_per_reply": round(sum(per_reply.values()), 2),
        "onnxruntime_calls_per_reply": round(chunks / replies, 3),
        "rows_per_call_mean": round(replies / chunks, 2),
        # n-grams the model calls look up, padding included, per n-gram of the texts
        "padded_per_real_ngram": round(padded / real, 3),
    }


def _prepare(proc: BatchProcessor, records: Sequence[InboundRecord], pass_size: int) -> list[_Pass]:
    """Every pass's decoded queries, chunks (holding their loaded models), rows and scores."""
    passes = []
    for start in range(0, len(records), pass_size):
        batch = records[start : start + pass_size]
        queries = _decode(proc, batch)
        plan = plan_batch(queries, proc.resolve, proc.context.clock_ms())
        with proc.pin_models(plan.routes) as models:  # resident: the cache's budget is ample
            chunks: list[Chunk] = [
                (model, group)
                for route, group in plan.groups.items()
                if not isinstance(model := models[route], Exception)
            ]
        rows, padded = _featurize(chunks)
        probs = _infer(chunks, padded)
        passes.append(_Pass(batch, queries, chunks, rows, padded, probs))
    return passes


def _decode(proc: BatchProcessor, records: Sequence[InboundRecord]) -> list[DecodedQuery]:
    config = proc.config
    decoded = [
        decode_query(r, max_bytes=config.max_record_bytes, default_stage=config.default_stage)
        for r in records
    ]
    return [d for d in decoded if isinstance(d, DecodedQuery)]


def _featurize(chunks: Sequence[Chunk]) -> tuple[list[GroupRows], list[Padded]]:
    rows = hash_pass(
        [(model.metadata.featurizer, [q.query["text"] for q in group]) for model, group in chunks]
    )
    return rows, [r.padded() for r in rows]


def _infer(
    chunks: Sequence[Chunk],
    padded: Sequence[Padded],
) -> list[npt.NDArray[np.float32]]:
    return [
        predict_padded(model.session, ids, weights)
        for (model, _group), (ids, weights) in zip(chunks, padded, strict=True)
    ]


def _reply(proc: BatchProcessor, done: _Pass) -> list[bytes]:
    context = proc.context
    started = context.clock_ms()
    ran = [
        _Ran(group, probs, ChunkShared.of(model, context.worker, started, PLACEHOLDER_INFERENCE_MS))
        for (model, group), probs in zip(done.chunks, done.probs, strict=True)
    ]
    outcome = BatchOutcome()
    _replies(ran, context, outcome)
    return [reply.encode() for reply in outcome.replies]
