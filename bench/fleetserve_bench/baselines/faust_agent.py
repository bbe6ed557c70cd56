"""The obvious implementation: a faust-streaming agent answering one query at a time.

This is what a team would write first with faust-streaming, which the user named: one
agent over the queries topic; for each event, decode the JSON, find the bot's model in a
plain dict (no eviction, no byte budget, no deployments topic: a miss loads the newest
snapshot of the bot from the local artifact store), run the model on that one text and
``await`` one ``send`` of the reply. No batching, no fair share, no dead letters, no
transactions: faust commits consumed offsets on its own timer (at-least-once).

It answers with the same model and the same featurization as the worker, so the
difference measured is the serving design, not the model. The brief measured
faust-streaming at about 4,000 msg/s with one ``send`` per event on these machines.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import numpy as np
import orjson

from fleetserve.core.clock import now_ms
from fleetserve.models.runtime import (
    InferenceSession,
    ModelMetadata,
    new_session,
    predict,
    read_model_metadata,
)
from fleetserve.store.local import LocalDirectoryStore

logger = logging.getLogger(__name__)

FALLBACK_INTENT = "fallback"  # as the worker answers under the bot's threshold


@dataclass(frozen=True)
class NaiveModel:
    session: InferenceSession
    metadata: ModelMetadata


class NaiveModels:
    """bot id -> model, loaded on first use and kept forever."""

    def __init__(self, store: LocalDirectoryStore) -> None:
        self.store = store
        self.models: dict[str, NaiveModel] = {}

    def get(self, bot_id: str) -> NaiveModel:
        model = self.models.get(bot_id)
        if model is None:
            versions = self.store.versions(bot_id)
            if not versions:
                raise LookupError(f"no snapshot of bot {bot_id!r} in {self.store.root}")
            session = new_session(self.store.read_model(bot_id, versions[-1]))
            model = self.models[bot_id] = NaiveModel(session, read_model_metadata(session))
        return model

    def answer(self, query: dict[str, Any]) -> dict[str, Any]:
        model = self.get(query["bot_id"])
        probs = predict(model.session, model.metadata.featurizer, [query["text"]])[0]
        best = int(np.argmax(probs))
        confidence = float(probs[best])
        fallback = confidence < model.metadata.fallback_threshold
        return {
            "request_id": query["request_id"],
            "bot_id": query["bot_id"],
            "intent": FALLBACK_INTENT if fallback else model.metadata.labels[best],
            "confidence": confidence,
            "sent_at_ms": query["sent_at_ms"],
            "produced_at_ms": now_ms(),
        }


def broker_url(bootstrap: str) -> str:
    """``h1:9092,h2:9092`` -> ``kafka://h1:9092;kafka://h2:9092`` (faust's form)."""
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(",") if server)


def make_app(args: argparse.Namespace, datadir: Path) -> faust.App:
    app = faust.App(
        args.group,
        broker=broker_url(args.bootstrap),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        datadir=str(datadir),
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=args.session_timeout_ms / 1000,
    )
    queries = app.topic(args.queries)
    replies = app.topic(args.replies)
    models = NaiveModels(LocalDirectoryStore(Path(args.store)))

    async def answer(stream: faust.StreamT[bytes]) -> None:
        async for key, value in stream.items():
            try:
                reply = models.answer(orjson.loads(value))
            except Exception:  # the naive service logs and moves on
                logger.exception("could not answer a query (key %r)", key)
                continue
            await replies.send(key=key, value=orjson.dumps(reply))

    app.agent(queries, name="answer")(answer)
    return app


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fleetserve_bench.baselines.faust_agent")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--queries", required=True, help="topic of query v1 messages")
    parser.add_argument("--replies", required=True, help="topic to send replies to")
    parser.add_argument("--store", required=True, help="local artifact store directory")
    parser.add_argument("--group", required=True, help="faust app id (its consumer group)")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with tempfile.TemporaryDirectory(prefix="fleetserve-faust-") as datadir:
        app = make_app(args, Path(datadir))
        worker = faust.Worker(
            app, loglevel=args.log_level.upper(), override_logging=False, quiet=True
        )
        try:
            worker.execute_from_commandline()
        except SystemExit as exit_:  # mode exits 0 after a SIGTERM/SIGINT shutdown
            return exit_.code if isinstance(exit_.code, int) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
