"""`relabel collect`: a resumable batch job over the replies topic (and a shadow's).

Its own consumer group, ``read_committed``. By default it stops once every partition
reached the end it had when the job started (an end-of-partition event at or past it:
Tansu under-reports watermarks, so offsets alone never decide); ``follow`` keeps going.

Crash safety: review files are written first (each atomically), offsets are committed
after, and only up to what was written and no further than a reply still waiting for
its shadow twin. A crash after the write and before the commit reads those replies
again, and entries are merged by request id, so nothing is counted twice; a crash
before the write loses nothing, since nothing was committed.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from fleetserve.config.settings import KafkaSettings
from fleetserve.contracts.codec import decode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.errors import ContractError, KafkaUnavailable
from fleetserve.kafka.clients import consumer
from fleetserve.kafka.offsets import log_ends
from fleetserve.relabel.botsource import BotSource
from fleetserve.relabel.discover import discover_clusters
from fleetserve.relabel.files import (
    RUNS,
    append_jsonl,
    read_clusters,
    read_queue,
    write_clusters,
    write_queue,
)
from fleetserve.relabel.intake import Intake, IntakeRules

logger = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class CollectOptions:
    out_dir: Path
    group: str = "fleetserve-relabel"
    shadow_topic: str | None = None
    rules: IntakeRules = field(default_factory=IntakeRules)
    follow: bool = False
    timeout_s: float = 300.0
    flush_records: int = 2000
    flush_interval_s: float = 5.0
    discover: bool = True
    min_cluster_size: int = 3
    consumer_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class CollectReport:
    counts: dict[str, Counter[str]]
    bots_written: list[str]
    clusters: dict[str, int]
    seconds: float

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.counts.values():
            total.update(counts)
        return total


def collect(
    kafka: KafkaSettings,
    replies_topic: str,
    options: CollectOptions,
    bots: BotSource | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> CollectReport:
    """Read until the ends seen at the start (or ``should_stop`` in follow mode)."""
    started = time.monotonic()
    source = bots or BotSource(None)
    intake = Intake(
        options.rules, lambda bot: read_queue(options.out_dir, bot), source.training_keys
    )
    run = _Run(kafka, replies_topic, options, intake)
    written: set[str] = set()
    try:
        run.attach()
        run.loop(should_stop, written)
        if not options.follow:
            intake.release(everything=True)
        written |= run.flush()
    finally:
        run.client.close()
    clusters = _discover(options, intake, source, written) if options.discover else {}
    report = CollectReport(
        dict(intake.counts), sorted(written), clusters, time.monotonic() - started
    )
    append_jsonl(options.out_dir / RUNS, [_run_record(report, replies_topic, options)])
    return report


class _Run:
    def __init__(
        self, kafka: KafkaSettings, topic: str, options: CollectOptions, intake: Intake
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.options = options
        self.intake = intake
        self.client: Consumer = consumer(
            kafka,
            {
                "group.id": options.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                **options.consumer_overrides,
            },
        )
        self.topics = [topic] + ([options.shadow_topic] if options.shadow_topic else [])
        self.ends: dict[TopicPartitionKey, int] = {}
        self.positions: dict[TopicPartitionKey, int] = {}
        self.since_flush = 0
        self.flushed_at = time.monotonic()

    def attach(self) -> None:
        for topic, marks in log_ends(self.kafka, self.topics, 10.0).items():
            for partition, (low, high) in marks.items():
                if high > low:
                    self.ends[(topic, partition)] = high
        self.client.subscribe(self.topics, on_revoke=self._on_revoke)

    def loop(self, should_stop: Callable[[], bool], written: set[str]) -> None:
        deadline = time.monotonic() + self.options.timeout_s
        pending = set(self.ends)
        while self.options.follow or pending:
            if should_stop():
                return
            if not self.options.follow and time.monotonic() > deadline:
                behind = ", ".join(f"{t}[{p}]" for t, p in sorted(pending))
                raise KafkaUnavailable(
                    f"relabel collect did not reach the end within {self.options.timeout_s:g}s; "
                    f"behind: {behind}"
                )
            message = self.client.poll(0.2)
            if message is not None:
                self._handle(message, pending)
            if self._flush_due():
                written |= self.flush()

    def flush(self) -> set[str]:
        """Write every changed queue, then commit what they hold (minus waiting joins)."""
        if self.options.follow:
            self.intake.release()
        dirty = set(self.intake.dirty)
        for bot in sorted(dirty):
            write_queue(self.options.out_dir, bot, self.intake.bot_entries(bot).values())
        self.intake.dirty.clear()
        self._commit()
        self.since_flush = 0
        self.flushed_at = time.monotonic()
        return dirty

    def _handle(self, message: Message, pending: set[TopicPartitionKey]) -> None:
        where = (message.topic() or "", message.partition() or 0)
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                if (message.offset() or 0) >= self.ends.get(where, 0):
                    pending.discard(where)
                return
            if error.fatal():
                raise KafkaException(error)
            logger.debug("consumer event on %s[%s]: %s", *where, error)
            return
        offset = message.offset() or 0
        self.positions[where] = offset + 1
        self.since_flush += 1
        try:
            reply = decode(MessageKind.REPLY, message.value() or b"")
        except ContractError as exc:
            logger.warning("skipping an invalid reply at %s[%s]@%s: %s", *where, offset, exc)
            self.intake.count_invalid()
            return
        if where[0] == self.topic:
            self.intake.on_real(reply, (*where, offset))
        else:
            self.intake.on_shadow(reply, (*where, offset))

    def _flush_due(self) -> bool:
        return self.since_flush >= self.options.flush_records or (
            self.since_flush > 0
            and time.monotonic() - self.flushed_at >= self.options.flush_interval_s
        )

    def _commit(self) -> None:
        held = self.intake.held_back()
        offsets = [
            TopicPartition(topic, partition, min(position, held.get((topic, partition), position)))
            for (topic, partition), position in sorted(self.positions.items())
        ]
        if not offsets:
            return
        for committed in self.client.commit(offsets=offsets, asynchronous=False) or []:
            if committed.error is not None:
                raise KafkaException(committed.error)

    def _on_revoke(self, _client: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            self.flush()
        except KafkaException as exc:
            logger.warning("flush before a rebalance failed: %s", exc)
        for revoked in partitions:
            self.positions.pop((revoked.topic, revoked.partition), None)


def _discover(
    options: CollectOptions, intake: Intake, source: BotSource, bots: set[str]
) -> dict[str, int]:
    found: dict[str, int] = {}
    for bot in sorted(bots):
        entries = intake.bot_entries(bot)
        previous = read_clusters(options.out_dir, bot)
        clusters = discover_clusters(
            list(entries.values()),
            source.definition(bot),
            min_cluster_size=options.min_cluster_size,
            previous=previous,
        )
        write_clusters(options.out_dir, bot, clusters)
        write_queue(options.out_dir, bot, entries.values())
        found[bot] = len(clusters)
    return found


def _run_record(report: CollectReport, topic: str, options: CollectOptions) -> dict[str, Any]:
    return {
        "finished_at_ms": int(time.time() * 1000),
        "topic": topic,
        "shadow_topic": options.shadow_topic,
        "group": options.group,
        "seconds": round(report.seconds, 2),
        "bots": {bot: dict(counts) for bot, counts in sorted(report.counts.items())},
        "clusters": report.clusters,
    }
