"""`relabel collect` against the real broker: bounded by the ends seen at the start, and a
crash between writing the queue and committing loses nothing and counts nothing twice."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetserve.config.settings import KafkaSettings
from fleetserve.contracts.codec import encode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.kafka.clients import producer
from fleetserve.relabel.collect import CollectOptions, collect
from fleetserve.relabel.files import read_queue
from support.kafka import TEST_SESSION_TIMEOUT_MS

pytestmark = pytest.mark.kafka
# The module, not the function the package re-exports under the same name.
collect_module = importlib.import_module("fleetserve.relabel.collect")
SHA = "e" * 64


def reply(i: int, *, bot: str = "bank", fallback: bool = True) -> dict[str, Any]:
    score = 0.3 if fallback else 0.95
    return {
        "version": 1,
        "request_id": f"q-{i}",
        "bot_id": bot,
        "stage": "real",
        "model": {"version": "v1", "sha256": SHA, "quantization": "int8"},
        "intent": "fallback" if fallback else "balance",
        "confidence": score,
        "top_k": [{"intent": "balance", "score": score}, {"intent": "transfer", "score": 0.2}],
        "fallback": fallback,
        "text": f"question number {i % 7} about my bills",
        "timings": {"queued_ms": 1.0, "inference_ms": 0.1, "total_ms": 1.5},
        "worker": {"id": "w", "group": "real"},
        "source": {"topic": "q", "partition": 0, "offset": i},
        "produced_at_ms": 1_800_000_000_000 + i,
    }


def publish(kafka: KafkaSettings, topic: str, replies: list[dict[str, Any]]) -> None:
    writer = producer(kafka, {"transactional.id": f"relabel-test-{uuid.uuid4().hex}"})
    writer.init_transactions(10)
    writer.begin_transaction()
    for record in replies:
        writer.produce(
            topic, key=record["bot_id"].encode(), value=encode(MessageKind.REPLY, record)
        )
    writer.commit_transaction(10)


def options(out: Path, group: str, **extra: Any) -> CollectOptions:
    return CollectOptions(
        out_dir=out,
        group=group,
        discover=False,
        consumer_overrides={"session.timeout.ms": int(TEST_SESSION_TIMEOUT_MS)},
        timeout_s=60,
        **extra,
    )


def test_a_crash_before_the_commit_is_read_again_without_double_counting(
    kafka_settings: KafkaSettings,
    topic_factory: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = topic_factory(partitions=2)
    group = f"relabel-{uuid.uuid4().hex[:8]}"
    first = [reply(i) for i in range(40)] + [reply(100, fallback=False)]
    publish(kafka_settings, topic, first)
    out = tmp_path / "review"

    def crash(_self: object) -> None:
        raise RuntimeError("killed between the write and the commit")

    monkeypatch.setattr(collect_module._Run, "_commit", crash)
    with pytest.raises(RuntimeError, match="killed"):
        collect(kafka_settings, topic, options(out, group, flush_records=10))
    written = read_queue(out, "bank")
    assert 0 < sum(e.count for e in written.values()) <= 40
    monkeypatch.undo()

    report = collect(kafka_settings, topic, options(out, group))
    entries = read_queue(out, "bank")
    assert sum(e.count for e in entries.values()) == 40  # every fallback once
    assert len(entries) == 7  # seven distinct texts
    assert all(len(set(e.request_ids)) == e.count for e in entries.values())
    totals = report.totals()
    assert totals["replies"] == 41
    assert totals["collected_duplicate"] == sum(e.count for e in written.values())
    assert totals["not_selected"] == 1

    publish(kafka_settings, topic, [reply(200 + i) for i in range(5)])
    resumed = collect(kafka_settings, topic, options(out, group))
    assert resumed.totals()["replies"] == 5  # the same group continues after its commit
    assert sum(e.count for e in read_queue(out, "bank").values()) == 45
    runs = [orjson.loads(x) for x in (out / "collect-runs.jsonl").read_bytes().splitlines()]
    assert len(runs) == 2
