"""The monitor: does it keep up with a big fleet's bot-stats, and does its guard catch a
broken deploy, quickly and without false alarms?

Run: python bench/components/monitor_bench.py [--scenario throughput|guard|steady|all]
     [--fleet-rate 50000] [--bots 1000] [--seconds 60] [--steady-minutes 10]
     [--out bench/results/monitor.json]

- throughput: the bot-stats that a --fleet-rate q/s fleet of --bots bots (Zipf s=1.1,
  2 workers, 2 s flush interval) writes, produced in real time for --seconds into a
  running ``fleetserve monitor``; the monitor's lag (now minus each summary's
  ``window_end_ms`` when folded), what it folded against what was produced, its CPU.
  The monitor's load is records, not queries: one per active (bot, version, stage) per
  worker interval, whatever the query rate; the summaries carry the counts.
- guard: a real worker and real models; 1,000 q/s to one bot, then a deploy of the same
  bot trained on shuffled labels; seconds from the deploy's acknowledgement to the
  guard's rollback record.
- steady: --steady-minutes of traffic to 4 bots while a good retrained version is
  deployed to one of them every minute; counts rollbacks and alerts (should be 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import urllib3

from fleetserve.bots.definition import Utterance
from fleetserve.bots.fleet import make_fleet
from fleetserve.broker.embedded import EmbeddedBroker, free_loopback_port
from fleetserve.builder.build import build_bot
from fleetserve.builder.config import BuildConfig
from fleetserve.client.query import make_query
from fleetserve.config.settings import KafkaSettings
from fleetserve.contracts.codec import encode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.deploy import records
from fleetserve.deploy.log import publish_record, read_deployments
from fleetserve.kafka.clients import admin_client, producer
from fleetserve.stats.record import FlushInfo, stats_record
from fleetserve.stats.summary import StatsKey, Summary
from fleetserve.store.local import LocalDirectoryStore
from fleetserve.topics.apply import apply_topics
from fleetserve.topics.loader import load_topics

INTERVAL_S = 2.0
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


class Monitor:
    def __init__(self, bootstrap: str, prefix: str, store: Path, *extra: str) -> None:
        self.port = free_loopback_port()
        argv = [sys.executable, "-m", "fleetserve", "--bootstrap", bootstrap, "--topic-prefix",
                prefix, "--store", str(store), "--log-level", "WARNING", "monitor",
                "--web-port", str(self.port), "--session-timeout-ms", "6000", *extra]  # fmt: skip
        self.log = Path(tempfile.mkdtemp()) / "monitor.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.http = urllib3.PoolManager()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if self.status()["deployments_caught_up"]:
                    return
            except Exception:  # noqa: S110 (not up yet)
                pass
            time.sleep(0.5)
        raise RuntimeError(f"monitor did not start; see {self.log}")

    def status(self) -> dict[str, Any]:
        reply = self.http.request("GET", f"http://127.0.0.1:{self.port}/api/status", timeout=5)
        data: dict[str, Any] = orjson.loads(reply.data)
        return data

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def world(prefix: str) -> tuple[EmbeddedBroker, Any]:
    broker = EmbeddedBroker()
    broker.start()
    topics = load_topics(None, "local", prefix)
    apply_topics(admin_client(KafkaSettings(broker.bootstrap_servers)), topics)
    return broker, topics


def synthetic_summary(count: int, rng: np.random.Generator) -> Summary:
    """What ``count`` replies of a healthy bot add up to (the monitor reads only sums)."""
    summary = Summary(replies=count, fallbacks=int(rng.binomial(count, 0.08)))
    confidences = rng.beta(8, 2, size=min(count, 64))
    scale = count / len(confidences)
    summary.confidence_sum = float(confidences.sum() * scale)
    summary.confidence_sum_sq = float((confidences**2).sum() * scale)
    summary.confidence_hist = [int(n * scale) for n in np.histogram(confidences, 10, (0, 1))[0]]
    summary.margin_hist = list(summary.confidence_hist)
    summary.latency_sum_ms = 15.0 * count
    summary.latency_hist[4] = count
    summary.inference_sum_ms = 0.3 * count
    summary.inference_sum_sq = 0.09 * count
    return summary


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"mb{int(time.time())}."
    broker, topics = world(prefix)
    kafka = KafkaSettings(broker.bootstrap_servers)
    monitor = Monitor(broker.bootstrap_servers, prefix, Path(tempfile.mkdtemp()))
    client = producer(kafka, {"linger.ms": 20, "acks": "all"})
    rng = np.random.default_rng(1)
    weights = 1.0 / np.arange(1, args.bots + 1) ** 1.1
    weights /= weights.sum()
    started_ms = int(time.time() * 1000)
    produced = 0
    cpu0, wall0 = cpu_seconds(monitor.process.pid), time.monotonic()
    lags: list[float] = []
    per_interval = int(args.fleet_rate * INTERVAL_S)
    for seq in range(1, int(args.seconds / INTERVAL_S) + 1):
        tick = time.monotonic()
        now_ms = int(time.time() * 1000)
        counts = rng.multinomial(per_interval, weights)
        for bot, count in enumerate(counts):
            if not count:
                continue
            worker = bot % 2  # a bot's partition lives on one of the two workers
            flush = FlushInfo(f"w{worker}", "real", started_ms, seq, now_ms - 2000, now_ms)
            key = StatsKey(f"bot-{bot:05d}", "v1", "real")
            record = stats_record(key, synthetic_summary(int(count), rng), flush)
            value = encode(MessageKind.BOT_STATS, record)
            client.produce(topics.name("bot_stats"), key=key.bot_id.encode(), value=value)
            produced += 1
        client.flush(30)
        lags.append(monitor.status()["last_lag_ms"])
        time.sleep(max(0.0, INTERVAL_S - (time.monotonic() - tick)))
    deadline = time.monotonic() + 120
    while monitor.status()["folded"] < produced and time.monotonic() < deadline:
        time.sleep(0.5)
    caught_up_s = time.monotonic() - wall0 - args.seconds
    status = monitor.status()
    cpu = cpu_seconds(monitor.process.pid) - cpu0
    wall = time.monotonic() - wall0
    monitor.stop()
    broker.stop()
    return {
        "fleet_rate_qps": args.fleet_rate,
        "bots": args.bots,
        "workers_simulated": 2,
        "flush_interval_s": INTERVAL_S,
        "seconds": args.seconds,
        "records_produced": produced,
        "records_per_s": round(produced / args.seconds, 1),
        "records_folded": status["folded"],
        "duplicates_skipped": status["duplicates"],
        "lag_ms_p50": statistics.median(lags),
        "lag_ms_max_sampled": max(lags),
        "lag_ms_max_folded": status["max_lag_ms"],
        "drained_after_last_produce_s": round(max(0.0, caught_up_s), 2),
        "monitor_cpu_s": round(cpu, 2),
        "monitor_cpu_share_of_one_core": round(cpu / wall, 3),
    }


def fleet(store: LocalDirectoryStore, n: int) -> list[Any]:
    bots = make_fleet(10 + n, seed=31)[10:]
    for bot in bots:
        build_bot(bot, BuildConfig(seed=0), store)
    return bots


def version(store: LocalDirectoryStore, bot: Any, seed: int = 0) -> tuple[str, str]:
    result = build_bot(bot, BuildConfig(seed=seed), store)
    assert result.version is not None
    return result.version, store.read_manifest(bot.bot_id, result.version)["model"]["sha256"]


def shuffled(bot: Any) -> Any:
    labels = [u.intent for u in bot.utterances]
    random.Random(5).shuffle(labels)  # noqa: S311
    pairs = zip(bot.utterances, labels, strict=True)
    return dataclasses.replace(bot, utterances=tuple(Utterance(u.text, lab) for u, lab in pairs))


class Traffic(threading.Thread):
    """Paced queries, in-domain texts, to the given bots (round robin)."""

    def __init__(
        self, kafka: KafkaSettings, topic: str, bots: list[Any], rate: float, linger_ms: int = 5
    ) -> None:
        super().__init__(daemon=True)
        # Tansu slows sharply past ~10,000 batches in a partition (docs/architecture.md):
        # long runs linger longer so that fewer, larger batches stay under that.
        self.client = producer(kafka, {"linger.ms": linger_ms})
        self.topic, self.bots, self.rate = topic, bots, rate
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        texts = {b.bot_id: [u.text for u in b.utterances] for b in self.bots}
        started = time.monotonic()
        while not self.stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.sent < due:
                bot = self.bots[self.sent % len(self.bots)].bot_id
                query = make_query(bot, texts[bot][self.sent % len(texts[bot])])
                self.client.produce(self.topic, key=bot.encode(), value=orjson.dumps(query))
                self.sent += 1
            self.client.poll(0)
            time.sleep(0.01)
        self.client.flush(10)


def worker_process(bootstrap: str, prefix: str, store: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "fleetserve", "--bootstrap", bootstrap, "--topic-prefix",
            prefix, "--store", str(store), "--worker-id", "bench-w1", "--log-level", "WARNING",
            "worker", "--ops-port", "0", "--session-timeout-ms", "6000",
            "--state-dir", tempfile.mkdtemp()]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def deploy(kafka: KafkaSettings, topic: str, bot_id: str, ref: tuple[str, str]) -> float:
    current = read_deployments(kafka, topic).get(bot_id)
    record = records.deploy(
        current,
        bot_id=bot_id,
        stage="real",
        model_version=ref[0],
        sha256=ref[1],
        actor="bench",
        now_ms=int(time.time() * 1000),
    )
    publish_record(kafka, topic, record)
    return time.monotonic()


def guard(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"mg{int(time.time())}."
    broker, topics = world(prefix)
    kafka = KafkaSettings(broker.bootstrap_servers)
    store = LocalDirectoryStore(Path(tempfile.mkdtemp()))
    [bot] = fleet(store, 1)
    good, broken = version(store, bot), version(store, shuffled(bot))
    deployments = topics.name("deployments")
    deploy(kafka, deployments, bot.bot_id, good)
    worker = worker_process(broker.bootstrap_servers, prefix, store.root)
    monitor = Monitor(broker.bootstrap_servers, prefix, store.root)
    traffic = Traffic(kafka, topics.name("queries"), [bot], 1000)
    traffic.start()
    time.sleep(args.baseline_s)
    deployed = deploy(kafka, deployments, bot.bot_id, broken)
    caught_s = None
    while time.monotonic() - deployed < 120:
        record = read_deployments(kafka, deployments).get(bot.bot_id) or {}
        if record.get("action") == "rollback" and record.get("actor") == "monitor":
            caught_s = time.monotonic() - deployed
            evidence = record["evidence"]
            break
        time.sleep(0.5)
    traffic.stop.set()
    traffic.join()
    worker.terminate()
    worker.wait(30)
    monitor.stop()
    broker.stop()
    return {
        "rate_qps": 1000,
        "baseline_s": args.baseline_s,
        "queries_sent": traffic.sent,
        "caught_after_s": None if caught_s is None else round(caught_s, 2),
        "target_s": 30,
        "evidence": evidence if caught_s is not None else None,
    }


def steady(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"ms{int(time.time())}."
    broker, topics = world(prefix)
    kafka = KafkaSettings(broker.bootstrap_servers)
    store = LocalDirectoryStore(Path(tempfile.mkdtemp()))
    bots = fleet(store, 4)
    deployments = topics.name("deployments")
    for bot in bots:
        deploy(kafka, deployments, bot.bot_id, version(store, bot))
    worker = worker_process(broker.bootstrap_servers, prefix, store.root)
    monitor = Monitor(broker.bootstrap_servers, prefix, store.root)
    traffic = Traffic(kafka, topics.name("queries"), bots, args.steady_rate, linger_ms=100)
    traffic.start()
    redeploys = 0
    for minute in range(args.steady_minutes):
        time.sleep(60)
        bot = bots[minute % len(bots)]
        deploy(kafka, deployments, bot.bot_id, version(store, bot, seed=1 + minute))  # retrained
        redeploys += 1
    time.sleep(60)
    status = monitor.status()
    overview = orjson.loads(
        monitor.http.request("GET", f"http://127.0.0.1:{monitor.port}/api/overview").data
    )
    traffic.stop.set()
    traffic.join()
    worker.terminate()
    worker.wait(30)
    monitor.stop()
    broker.stop()
    actions = [a for a in status["audit"] if a["actor"] == "monitor"]
    return {
        "minutes": args.steady_minutes,
        "rate_qps": args.steady_rate,
        "good_redeploys": redeploys,
        "guard_rollbacks": sum(a["action"] == "rollback" for a in actions),
        "guard_alerts": sum(a["action"] == "alert" for a in actions),
        "watches": [(w["bot_id"], w["state"], w["note"]) for w in status["watches"]],
        "outcomes_last_hour_by_bot": {
            row["bot_id"]: row["last_hour"]["outcomes"] for row in overview
        },
        "queries_sent": traffic.sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--scenario", default="all", choices=["throughput", "guard", "steady", "all"]
    )
    parser.add_argument("--fleet-rate", type=int, default=50_000)
    parser.add_argument("--bots", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--baseline-s", type=float, default=20)
    parser.add_argument("--steady-minutes", type=int, default=10)
    parser.add_argument("--steady-rate", type=float, default=40)
    parser.add_argument("--out", type=Path, default=Path("bench/results/monitor.json"))
    args = parser.parse_args()
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs = {"throughput": throughput, "guard": guard, "steady": steady}
    for name, run in runs.items():
        if args.scenario in (name, "all"):
            load_before = loadavg()
            result = run(args)
            result["machine"] = {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "loadavg_before": load_before,
                "loadavg_after": loadavg(),
            }
            results[name] = result
            print(name, json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
