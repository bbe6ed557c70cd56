"""Hot swap: how soon a new deployment answers queries, and whether any query fails meanwhile.

Run: python bench/components/swap_bench.py [--swaps 10] [--rate 200] [--out bench/results/swap.json]

One embedded broker, one worker (in this process), one bot with two snapshots. Steady
traffic flows at --rate queries/s while the bot is redeployed --swaps times, alternating
between the two versions (a rollback is the same operation). For each swap: from the deployment
record's acknowledgement to the ``produced_at_ms`` of the first reply from the new version.
Every query is counted: replies, dead letters, missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from fleetserve.bots.fleet import make_fleet
from fleetserve.broker.embedded import EmbeddedBroker
from fleetserve.builder.build import build_bot
from fleetserve.builder.config import BuildConfig
from fleetserve.client.query import make_query
from fleetserve.config.serving import ServingSettings
from fleetserve.config.settings import KafkaSettings, Settings
from fleetserve.deploy import records
from fleetserve.deploy.log import publish_record
from fleetserve.kafka.clients import admin_client, consumer, producer
from fleetserve.serving.worker import Worker, WorkerTopics
from fleetserve.store.local import LocalDirectoryStore
from fleetserve.topics.apply import apply_topics
from fleetserve.topics.loader import load_topics
from fleetserve.topics.spec import TopicSet


def snapshots(store: LocalDirectoryStore) -> tuple[str, list[tuple[str, str]]]:
    bot = make_fleet(12, seed=21)[11]
    versions = []
    for seed in (0, 1):
        result = build_bot(bot, BuildConfig(seed=seed), store)
        assert result.version is not None
        sha = store.read_manifest(bot.bot_id, result.version)["model"]["sha256"]
        versions.append((result.version, sha))
    return bot.bot_id, versions


class Traffic(threading.Thread):
    def __init__(self, kafka: KafkaSettings, topic: str, bot: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.client = producer(kafka, {"linger.ms": 0})
        self.topic, self.bot, self.rate = topic, bot, rate
        self.sent: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        period = 1.0 / self.rate
        while not self.stop.is_set():
            query = make_query(self.bot, "what is my account balance")
            self.client.produce(self.topic, key=self.bot.encode(), value=orjson.dumps(query))
            self.client.poll(0)
            self.sent.add(query["request_id"])
            time.sleep(period)
        self.client.flush(10)


def start_worker(
    kafka: KafkaSettings, declared: TopicSet, store_dir: Path
) -> tuple[Worker, threading.Thread]:
    settings = Settings(
        kafka=kafka,
        group_id="swap-bench",
        worker_id="swap-1",
        store_dir=store_dir,
        serving=ServingSettings(ops_port=0, session_timeout_ms=6000),
    )
    worker = Worker(settings, WorkerTopics.from_declared(declared, None))
    ready = threading.Event()
    thread = threading.Thread(target=worker.run, kwargs={"ready": ready}, daemon=True)
    thread.start()
    ready.wait(60)
    return worker, thread


def output_reader(kafka: KafkaSettings, declared: TopicSet) -> Consumer:
    """Every replies and dead-letters partition from the start, committed records only."""
    reader = consumer(
        kafka,
        {"group.id": "swap-bench-reader", "isolation.level": "read_committed"},
    )
    reader.assign(
        [
            TopicPartition(declared.name(role), partition, OFFSET_BEGINNING)
            for role in ("replies", "dead_letters")
            for partition in range(declared.topics[role].partitions)
        ]
    )
    return reader


def measure(swaps: int, rate: float) -> dict[str, Any]:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        kafka = KafkaSettings(broker.bootstrap_servers)
        declared = load_topics(None, "local", "")
        apply_topics(admin_client(kafka), declared)
        store = LocalDirectoryStore(Path(tmp))
        bot, versions = snapshots(store)
        deployments = declared.name("deployments")
        current = records.deploy(
            None,
            bot_id=bot,
            stage="real",
            model_version=versions[0][0],
            sha256=versions[0][1],
            actor="bench",
            now_ms=int(time.time() * 1000),
        )
        publish_record(kafka, deployments, current)
        worker, thread = start_worker(kafka, declared, Path(tmp))
        outputs = output_reader(kafka, declared)
        traffic = Traffic(kafka, declared.name("queries"), bot, rate)
        traffic.start()
        seen: dict[str, str] = {}  # request id -> version, or "dead:<reason>"
        duplicates = 0

        def drain(until: float, want: str | None) -> int | None:
            """Read outputs until ``until``; the produced_at_ms of the first reply from ``want``."""
            nonlocal duplicates
            first: int | None = None
            while time.monotonic() < until and first is None:
                for message in outputs.consume(500, 0.05):
                    if message.error() is not None:
                        continue
                    value = orjson.loads(message.value() or b"{}")
                    outcome = (
                        f"dead:{value['reason']}"
                        if "reason" in value
                        else value["model"]["version"]
                    )
                    rid = value.get("request_id") or "?"
                    duplicates += rid in seen
                    seen[rid] = outcome
                    if first is None and want is not None and outcome == want:
                        first = value["produced_at_ms"]
            return first

        drain(time.monotonic() + 15, versions[0][0])
        visible_s: list[float] = []
        for swap in range(swaps):
            version, sha = versions[(swap + 1) % 2]
            current = records.deploy(
                current,
                bot_id=bot,
                stage="real",
                model_version=version,
                sha256=sha,
                actor="bench",
                now_ms=int(time.time() * 1000),
            )
            publish_record(kafka, deployments, current)
            acked_ms = time.time() * 1000  # the replies' produced_at_ms is wall-clock too
            first = drain(time.monotonic() + 15, version)
            visible_s.append(((first or float("inf")) - acked_ms) / 1000)
            drain(time.monotonic() + 0.5, None)
        traffic.stop.set()
        traffic.join()
        until = time.monotonic() + 30
        while time.monotonic() < until and not traffic.sent <= seen.keys():
            drain(time.monotonic() + 0.5, None)
        worker.request_stop()
        thread.join(30)

        outputs.close()
    dead = sum(1 for o in seen.values() if o.startswith("dead:"))
    missing = len(traffic.sent - seen.keys())
    return {
        "benchmark": "hot swap under steady traffic (one worker, one bot, two snapshots)",
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "swaps": swaps,
        "offered_rate_qps": rate,
        "queries_sent": len(traffic.sent),
        "replies": len(seen) - dead,
        "dead_letters": dead,
        "missing": missing,
        "duplicates": duplicates,
        "visible_after_ack_s": {
            "p50": round(statistics.median(visible_s), 3),
            "max": round(max(visible_s), 3),
            "all": [round(v, 3) for v in visible_s],
        },
        "target": "visible within 2 s, zero failed queries",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/swap.json"))
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    result = measure(args.swaps, args.rate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
