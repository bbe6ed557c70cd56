"""Helpers shared by the `fleetserve dlq` tests: real dead letters built the way workers build
them, and a way to put them on a dead-letter topic. Holds no tests itself."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson
from click.testing import CliRunner, Result
from confluent_kafka import KafkaError, Message, Producer

from fleetserve.cli.main import cli
from fleetserve.client.query import make_query
from fleetserve.contracts.codec import encode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.clock import now_ms
from fleetserve.core.outcome import Failure, WorkerIdentity
from fleetserve.core.records import Headers, InboundRecord
from fleetserve.core.route import Route
from fleetserve.deadletters.headers import REPLAY_ATTEMPT, dead_letter_headers
from support.builders import dead_letter_value

HOUR_MS = 3_600_000
SHA = "e" * 64
PHASES = {
    "decode": "decode",
    "schema": "decode",
    "too_large": "decode",
    "unknown_bot": "route",
    "no_deployment": "route",
    "deadline_exceeded": "route",
    "model_missing": "load",
    "model_corrupt": "load",
    "model_load_failed": "load",
    "inference_error": "infer",
    "retries_exhausted": "publish",
}


def query_record(
    bot: str = "alpha",
    *,
    topic: str = "fleetserve.queries",
    partition: int = 0,
    offset: int = 0,
    value: bytes | None = None,
    headers: Headers = (),
    replay_attempt: int = 0,
    **fields: Any,
) -> InboundRecord:
    """A consumed query as a worker sees it; ``value`` overrides a valid query v1."""
    if value is None:
        value = orjson.dumps(make_query(bot, f"hello from {bot}", **fields))
    if replay_attempt:
        headers = (*headers, (REPLAY_ATTEMPT, str(replay_attempt).encode()))
    return InboundRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        key=bot.encode(),
        value=value,
        headers=headers,
        timestamp_ms=now_ms() - 60_000,
    )


def dead_letter(
    record: InboundRecord,
    reason: str = "unknown_bot",
    *,
    group: str = "real",
    at_ms: int | None = None,
    version: str | None = None,
    message: str = "it failed",
) -> dict[str, Any]:
    """A dead letter v1 of ``record`` from ``build_dead_letter``, as a worker writes it."""
    query: dict[str, Any] = {}
    try:
        loaded = orjson.loads(record.value or b"")
        query = loaded if isinstance(loaded, dict) else {}
    except orjson.JSONDecodeError:
        pass
    bot = query.get("bot_id")
    route = Route(bot, "real", version, SHA) if version is not None and bot else None
    failure = Failure(
        reason=reason,
        phase=PHASES[reason],
        message=message,
        bot_id=bot,
        request_id=query.get("request_id"),
        stage=query.get("stage", "real") if query else None,
        route=route,
        deadline_ms=query.get("deadline_ms"),
    )
    worker = WorkerIdentity(worker_id="w-1", group=group)
    return dead_letter_value(record, failure, worker=worker, at_ms=at_ms)


@dataclass
class Written:
    """Where each produced dead letter landed, by a caller's label."""

    ids: dict[str, str] = field(default_factory=dict)
    errors: list[KafkaError] = field(default_factory=list)


def write_dead_letters(
    producer: Producer,
    topic: str,
    letters: dict[str, dict[str, Any] | bytes],
    partitions: int = 3,
) -> Written:
    """Produce each dead letter (or raw bytes) to ``topic``, spread over partitions, and
    wait; returns each label's ``partition:offset``."""
    written = Written()
    for index, (label, letter) in enumerate(letters.items()):

        def delivered(error: KafkaError | None, message: Message, label: str = label) -> None:
            if error is not None:
                written.errors.append(error)
            else:
                written.ids[label] = f"{message.partition()}:{message.offset()}"

        if isinstance(letter, bytes):
            producer.produce(
                topic, value=letter, partition=index % partitions, on_delivery=delivered
            )
            continue
        key = letter["original"]["key_b64"]
        headers: list[tuple[str, str | bytes | None]] = [*dead_letter_headers(letter)]
        producer.produce(
            topic,
            key=None if key is None else base64.b64decode(key),
            value=encode(MessageKind.DEAD_LETTER, letter),
            headers=headers,
            partition=index % partitions,
            on_delivery=delivered,
        )
    assert producer.flush(15) == 0
    assert not written.errors, written.errors
    return written


def run_cli(bootstrap: str, prefix: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--bootstrap", bootstrap, "--topic-prefix", prefix, *args])


def json_lines(output: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
