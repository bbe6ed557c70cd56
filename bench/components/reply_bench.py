"""CPU per reply of building and encoding replies: ``build_reply`` then ``OutcomeWriter.reply``.

Run: python bench/components/reply_bench.py [--replies 500] [--rounds 20]
         [--out bench/results/reply.json]

One chunk (one bot, 15 intents, top 3 asked) of query v1 records as the load generator
writes them, decoded by the worker's own ``decode_query``; the scores are fixed, so only
the reply stage is measured: the query's own fields, the statistics' facts, the encoded
bytes (the chunk's shared fields encoded once, ``serving/replies.py:ChunkShared``) and the
pass's output. CPU time is the process's own (``time.process_time``), best of 7.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fleetserve.core.clock import now_ms
from fleetserve.core.outcome import WorkerIdentity
from fleetserve.core.records import InboundRecord
from fleetserve.core.route import Route
from fleetserve.models.featurize import FeaturizerSpec
from fleetserve.models.metadata import ModelMetadata
from fleetserve.serving.answer import AnswerContext
from fleetserve.serving.decode import DecodedQuery, decode_query
from fleetserve.serving.outcomes import OutcomeConfig, OutcomeWriter
from fleetserve.serving.outputs import PassResult
from fleetserve.serving.replies import ChunkShared, build_reply
from fleetserve_bench.machine import write_result
from fleetserve_bench.procstat import best_cpu_seconds
from fleetserve_bench.traffic import query_value

LABELS = tuple(f"intent_{i}" for i in range(15))


class _Model:
    """What ``ChunkShared.of`` reads of a loaded model."""

    def __init__(self) -> None:
        self.route = Route("bench-bot", "real", "0123456789abcdef", "f" * 64)
        self.metadata = ModelMetadata(LABELS, 0.3, FeaturizerSpec(), {})
        self.quantization = "int8"
        self.session: Any = None


def queries(count: int) -> list[DecodedQuery]:
    sent = now_ms()
    decoded = []
    for offset in range(count):
        value = query_value("bench-bot", "book me a table for two tonight", sent)
        record = InboundRecord("queries", 0, offset, b"bench-bot", value, (), sent)
        query = decode_query(record, max_bytes=65536, default_stage="real")
        assert isinstance(query, DecodedQuery), query
        decoded.append(query)
    return decoded


def cpu_us_per_reply(count: int, rounds: int) -> float:
    worker = WorkerIdentity("bench-1", "bench")
    writer = OutcomeWriter(OutcomeConfig("dead-letters", 65536), AnswerContext(worker, "replies"))
    shared = ChunkShared.of(_Model(), worker, now_ms(), 0.5)
    chunk = queries(count)
    ranked, scores = [3, 1, 4, 0, 2], [0.9, 0.05, 0.02, 0.01, 0.005]

    def one_pass() -> PassResult:
        result = PassResult()
        now = now_ms()
        for query in chunk:
            writer.reply(build_reply(shared, query, ranked, scores, 3, "replies", now), result)
        assert result.replies["real"] == count
        return result

    for _ in range(rounds):
        one_pass()

    def passes() -> None:
        for _ in range(rounds):
            one_pass()

    return best_cpu_seconds(passes, 7) / (rounds * count) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=500, help="replies per chunk")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results/reply.json"))
    args = parser.parse_args()
    figure = round(cpu_us_per_reply(args.replies, args.rounds), 2)
    print(f"build + encode + output: {figure} CPU-us per reply")
    write_result(args.out, "reply", {"replies": args.replies, "cpu_us_per_reply": figure})


if __name__ == "__main__":
    main()
