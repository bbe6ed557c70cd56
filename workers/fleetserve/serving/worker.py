"""The serving worker: a consumer-group member that answers queries until told to stop.

Start-up order matters: the routing table must have caught up with the deployments
topic before the first query is read, or a bot deployed long ago would look unknown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from prometheus_client import CollectorRegistry

from fleetserve.cache import CacheMetrics, ModelCache, SnapshotLoader
from fleetserve.config import Settings
from fleetserve.deadletters.build import WorkerIdentity
from fleetserve.errors import FatalError
from fleetserve.kafka.clients import consumer as new_consumer
from fleetserve.kafka.clients import producer as new_producer
from fleetserve.kafka.records import InboundRecord
from fleetserve.ops import HealthInputs, HealthReport, OpsServer, evaluate_health
from fleetserve.retry.backoff import BackoffPolicy
from fleetserve.routing.table import RouteChange, RoutingTable
from fleetserve.routing.tailer import DeploymentTailer
from fleetserve.serving.answer import AnswerContext
from fleetserve.serving.commit import (
    PRODUCER_CONFIG,
    TRANSACTION_TIMEOUT_MS,
    AtLeastOnceCommitter,
    Committer,
    TransactionalCommitter,
    rewind,
)
from fleetserve.serving.metrics import WorkerMetrics
from fleetserve.serving.processor import BatchProcessor, PassResult, ProcessorConfig
from fleetserve.serving.rebalance import RebalanceTracker
from fleetserve.serving.targets import PartitionCounts, metadata_lookup
from fleetserve.store import LocalDirectoryStore
from fleetserve.store.base import ArtifactStore
from fleetserve.topics.spec import TopicSet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerTopics:
    queries: str
    replies: str
    dead_letters: str
    deployments: str
    control: frozenset[str]
    retry: str | None = None

    @classmethod
    def from_declared(cls, declared: TopicSet, replies_override: str | None) -> WorkerTopics:
        control = frozenset(
            declared.name(role)
            for role in ("queries", "dead_letters", "retry", "replays", "deployments")
        )
        return cls(
            queries=declared.name("queries"),
            replies=replies_override or declared.name("replies"),
            dead_letters=declared.name("dead_letters"),
            deployments=declared.name("deployments"),
            control=control,
            retry=declared.name("retry"),
        )


class Worker:
    """Owns the consumer, producer, routing tailer, model cache and ops endpoints."""

    def __init__(
        self,
        settings: Settings,
        topics: WorkerTopics,
        *,
        store: ArtifactStore | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.serving = settings.serving
        self.topics = topics
        self.identity = WorkerIdentity(settings.worker_id, settings.group_id)
        self.registry = registry or CollectorRegistry()
        self.metrics = WorkerMetrics(self.registry)
        self.cache = ModelCache(
            SnapshotLoader(store or LocalDirectoryStore(settings.store_dir)),
            budget_bytes=self.serving.model_memory_bytes,
            max_models=self.serving.max_models,
            metrics=CacheMetrics(self.registry),
            load_threads=self.serving.load_threads,
        )
        self.table = RoutingTable()
        self.tailer = DeploymentTailer(
            settings.kafka, topics.deployments, self.table, on_change=self._route_changed
        )
        self.ops = OpsServer(
            self.serving.ops_host, self.serving.ops_port, self.registry, self.health
        )
        self.processor = BatchProcessor(
            ProcessorConfig(
                dead_letters_topic=topics.dead_letters,
                default_stage=settings.stage.value,
                max_record_bytes=self.serving.max_record_bytes,
                max_rows_per_bot=self.serving.max_rows_per_bot,
                control_topics=topics.control,
                retry_topic=topics.retry,
                partitions_of=PartitionCounts(self._reply_topic_partitions),
                backoff=BackoffPolicy(
                    base_ms=self.serving.retry_base_ms,
                    max_ms=self.serving.retry_max_ms,
                    max_attempts=self.serving.retry_max_attempts,
                ),
            ),
            AnswerContext(
                self.identity,
                topics.replies,
                default_top_k=self.serving.default_top_k,
                max_rows_per_run=self.serving.max_rows_per_run,
            ),
            self.table.resolve,
            self.cache.pinned,
        )
        self.rebalance = RebalanceTracker()
        self.assigned: set[tuple[str, int]] = set()
        self.paused_until: dict[tuple[str, int], int] = {}  # retry partitions not yet due
        self._stop = threading.Event()
        self._heartbeat = time.monotonic()
        self._committer: Committer | None = None
        self._consumer: Consumer | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Safe from a signal handler: the loop finishes its pass, commits and closes."""
        self._stop.set()

    def run(self, ready: threading.Event | None = None) -> None:
        self.ops.start()
        self.tailer.start()
        try:
            if not self._wait_for_deployments():
                return
            self._committer = self._new_committer()
            self._committer.start()
            self._consumer = self._new_consumer()
            self._consumer.subscribe(
                [self.topics.queries, *([self.topics.retry] if self.topics.retry else [])],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            logger.info(
                "worker %s in group %s serving stage %s from %s (ops on port %d)",
                self.identity.worker_id,
                self.identity.group,
                self.settings.stage.value,
                self.topics.queries,
                self.ops.port,
            )
            if ready is not None:
                ready.set()
            self._loop(self._consumer, self._committer)
        finally:
            self._close()

    def _wait_for_deployments(self) -> bool:
        waited = 0.0
        while not self._stop.is_set():
            self._heartbeat = time.monotonic()
            if self.tailer.wait_caught_up(1.0):
                logger.info("routing table caught up: %d bots", len(self.table))
                return True
            if not self.tailer.healthy:
                raise FatalError(f"cannot read the deployments topic {self.topics.deployments}")
            waited += 1.0
            if waited % 10 == 0:
                logger.warning(
                    "still catching up with %s after %.0f s", self.topics.deployments, waited
                )
        return False

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()  # leaves the group: its partitions move at once
        if self._committer is not None:
            self._committer.close()
        self.tailer.stop()
        self.cache.close()
        self.ops.stop()
        logger.info("worker %s stopped", self.identity.worker_id)

    # -- the loop --------------------------------------------------------------------------

    def _loop(self, consumer: Consumer, committer: Committer) -> None:
        while not self._stop.is_set():
            self._heartbeat = time.monotonic()
            self._resume_due(consumer)
            messages = self._poll(consumer)
            records = self._records(messages)
            self._note_rebalance_window()
            if records:
                self._one_pass(consumer, committer, records)

    def _poll(self, consumer: Consumer) -> list[Message]:
        """What is already fetched, up to max_batch; else wait for the first record.

        ``consume(n, timeout)`` waits until n records or the timeout, so at low load every
        query would wait out the timeout; this returns as soon as anything is there, and
        batches grow by themselves while a pass is busy.
        """
        messages = consumer.consume(self.serving.max_batch, 0)
        if messages:
            return messages
        first = consumer.poll(self.serving.poll_timeout_s)
        if first is None:
            return []
        return [first, *consumer.consume(self.serving.max_batch - 1, 0)]

    def _one_pass(
        self, consumer: Consumer, committer: Committer, records: Sequence[InboundRecord]
    ) -> None:
        started = time.perf_counter()
        result = self.processor.process(records)
        if result.rewind:
            # Offsets beyond the fair share were never processed: read them next pass.
            rewind(consumer, result.rewind)
            self.metrics.deferred.inc(len(result.rewind))
        if result.held:
            self._hold(consumer, result.held)
        if committer.commit(consumer, result):
            self._count(result)
        else:
            self.metrics.aborted.inc()
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    def _hold(self, consumer: Consumer, held: dict[tuple[str, int], tuple[int, int]]) -> None:
        """Pause retry partitions whose head is not due, so waiting costs no polling."""
        rewind(consumer, {where: offset for where, (offset, _) in held.items()})
        owned = [where for where in held if where in self.assigned]
        consumer.pause([TopicPartition(topic, partition) for topic, partition in owned])
        for where in owned:
            self.paused_until[where] = held[where][1]

    def _resume_due(self, consumer: Consumer) -> None:
        if not self.paused_until:
            return
        now_ms = self.processor.context.clock_ms()
        due = [where for where, due_ms in self.paused_until.items() if due_ms <= now_ms]
        if due:
            consumer.resume([TopicPartition(topic, partition) for topic, partition in due])
            for where in due:
                del self.paused_until[where]

    def _records(self, messages: list[Message]) -> list[InboundRecord]:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(InboundRecord.from_message(message))
            elif error.code() != KafkaError._PARTITION_EOF:
                self._consumer_error(error)
        return records

    def _consumer_error(self, error: KafkaError) -> None:
        # Poll errors carry neither fatal() nor retriable() when the broker is briefly
        # away; librdkafka reconnects by itself, so only its own fatal verdict stops us.
        if error.fatal():
            raise FatalError(f"the consumer failed: {error.str()}")
        logger.warning("consumer: %s", error.str())

    def _count(self, result: PassResult) -> None:
        taken = sum(result.replies.values()) + sum(result.dead_letters.values())
        taken += sum(result.retries.values())
        self.metrics.records.inc(taken)
        self.metrics.batch_records.observe(taken)
        for stage, n in result.replies.items():
            self.metrics.replies.labels(stage).inc(n)
        for reason, n in result.dead_letters.items():
            self.metrics.dead_letters.labels(reason).inc(n)
        for reason, n in result.retries.items():
            self.metrics.retries.labels(reason).inc(n)

    # -- routing and rebalances -------------------------------------------------------------

    def _route_changed(self, change: RouteChange) -> None:
        if change.old is not None and change.old != change.new:
            logger.info(
                "bot %s on %s: %s -> %s",
                change.bot_id,
                change.stage,
                change.old.model_version,
                change.new.model_version if change.new else "(retired)",
            )
            self.cache.retire(change.bot_id, keep=change.new)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._assignment_changed(f"+{len(partitions)} partitions")

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned.difference_update(gone)
        for where in gone & self.paused_until.keys():
            del self.paused_until[where]
        self._assignment_changed(f"-{len(partitions)} partitions")

    def _assignment_changed(self, change: str) -> None:
        self.metrics.assigned.set(len(self.assigned))
        self.metrics.rebalances.labels("assign" if change.startswith("+") else "revoke").inc()
        logger.info("assignment %s: now %d partitions", change, len(self.assigned))
        self.rebalance.changed(change, self.cache.stats().misses, time.monotonic())

    def _note_rebalance_window(self) -> None:
        done = self.rebalance.observe(self.cache.stats().misses, time.monotonic())
        if done is not None:
            self.metrics.rebalance_cold_loads.observe(done[1])

    # -- clients and health -----------------------------------------------------------------

    def _reply_topic_partitions(self, topic: str) -> int | None:
        if self._consumer is None:  # not serving yet: nothing to check against
            return None
        return metadata_lookup(self._consumer)(topic)

    def _new_consumer(self) -> Consumer:
        return new_consumer(
            self.settings.kafka,
            {
                "group.id": self.settings.group_id,
                "client.id": f"fleetserve-{self.identity.worker_id}",
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": self.serving.session_timeout_ms,
                "isolation.level": "read_committed",
                "enable.auto.commit": self.serving.delivery == "at-least-once",
                "enable.auto.offset.store": False,
                "enable.partition.eof": False,
                # A broker that holds an empty fetch for its whole wait (Tansu does, seen
                # here) would add up to that wait to every query's latency.
                "fetch.wait.max.ms": self.serving.fetch_wait_max_ms,
            },
        )

    def _new_committer(self) -> Committer:
        if self.serving.delivery == "at-least-once":
            return AtLeastOnceCommitter(new_producer(self.settings.kafka, PRODUCER_CONFIG))
        transactional = {
            **PRODUCER_CONFIG,
            # Stable per worker: a restarted worker fences its crashed self's transaction.
            "transactional.id": f"fleetserve-{self.identity.group}-{self.identity.worker_id}",
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
        }
        return TransactionalCommitter(new_producer(self.settings.kafka, transactional))

    def health(self) -> HealthReport:
        return evaluate_health(
            HealthInputs(
                assigned_partitions=len(self.assigned),
                deployments_caught_up=self.tailer.caught_up,
                producer_healthy=self._committer is not None and self._committer.healthy(),
                loop_heartbeat_age_s=time.monotonic() - self._heartbeat,
                stopping=self._stop.is_set(),
            )
        )
