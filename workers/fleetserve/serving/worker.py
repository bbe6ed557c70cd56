"""The serving worker: a consumer-group member that answers queries until told to stop.

Start-up order matters: the routing table must have caught up with the deployments
topic, and the crash-loop breaker with the group's crash evidence, before the first
query is read; otherwise a bot deployed long ago would look unknown, and a record that
just killed this worker's predecessor would be processed as if nothing happened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from fleetserve.breaker.crash_breaker import CrashBreaker
from fleetserve.cache.loader import SnapshotLoader
from fleetserve.cache.metrics import CacheMetrics
from fleetserve.cache.model_cache import ModelCache
from fleetserve.config.settings import Settings
from fleetserve.contracts.schemas import preload as preload_schemas
from fleetserve.core.backoff import BackoffPolicy
from fleetserve.core.outcome import Verdict, WorkerIdentity
from fleetserve.core.records import Coordinates, InboundRecord, Partition
from fleetserve.errors import FatalError, KafkaUnavailable
from fleetserve.kafka.clients import admin_client, ends_reader
from fleetserve.kafka.records import inbound_record
from fleetserve.models.featurize_pass import warm_up
from fleetserve.ops.health import HealthInputs, HealthReport, evaluate_health
from fleetserve.ops.http import OpsServer
from fleetserve.retry.dedupe import RetrySteps
from fleetserve.retry.pausing import RetryPauses
from fleetserve.routing.table import RouteChange, RoutingTable
from fleetserve.routing.tailer import DeploymentTailer
from fleetserve.serving.answer import AnswerContext
from fleetserve.serving.clients import serving_committer, serving_consumer, step_reader
from fleetserve.serving.commit import Committer, rewind
from fleetserve.serving.metrics import WorkerMetrics
from fleetserve.serving.outputs import Output, PassResult
from fleetserve.serving.passsize import PassSizing, next_pass_size
from fleetserve.serving.plan import unprocessed_heads
from fleetserve.serving.processor import BatchProcessor, ProcessorConfig
from fleetserve.serving.rebalance import RebalanceTracker
from fleetserve.serving.targets import (
    UNCHECKED,
    CachedFacts,
    FactsLookup,
    ReplyTargets,
    TopicFacts,
    cluster_lookup,
    default_allowlist,
)
from fleetserve.stats.accumulator import StatsAccumulator, StatsIdentity
from fleetserve.store.base import ArtifactStore
from fleetserve.store.local import LocalDirectoryStore
from fleetserve.topics.spec import CONTROL_ROLES, TopicSet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerTopics:
    queries: str
    replies: str
    dead_letters: str
    deployments: str
    crashes: str
    bot_stats: str
    control_names: frozenset[str]
    """Control topics' names without a namespace: refused as reply_to in any namespace."""
    retry: str | None = None

    @classmethod
    def from_declared(cls, declared: TopicSet, replies_override: str | None) -> WorkerTopics:
        return cls(
            queries=declared.name("queries"),
            replies=replies_override or declared.name("replies"),
            dead_letters=declared.name("dead_letters"),
            deployments=declared.name("deployments"),
            crashes=declared.name("crashes"),
            control_names=frozenset(declared.base_name(role) for role in CONTROL_ROLES),
            retry=declared.name("retry"),
            bot_stats=declared.name("bot_stats"),
        )


class Worker:
    """Owns the consumer, producer, routing tailer, crash breaker, model cache and ops."""

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
            SnapshotLoader(
                store or LocalDirectoryStore(settings.store_dir),
                max_model_bytes=self.serving.max_model_bytes,
            ),
            budget_bytes=self.serving.model_memory_bytes,
            max_models=self.serving.max_models,
            metrics=CacheMetrics(self.registry),
            load_threads=self.serving.load_threads,
        )
        self.table = RoutingTable()
        self.tailer = DeploymentTailer(
            settings.kafka, topics.deployments, self.table, on_change=self._route_changed
        )
        self.breaker = CrashBreaker(
            settings.kafka,
            topics.crashes,
            group=settings.group_id,
            worker_id=settings.worker_id,
            state_dir=Path(self.serving.state_dir),
            poison_after=self.serving.poison_after,
        )
        self.ops = OpsServer(
            self.serving.ops_host, self.serving.ops_port, self.registry, self.health
        )
        self.processor = BatchProcessor(
            self._processor_config(),
            AnswerContext(
                self.identity,
                topics.replies,
                default_top_k=self.serving.default_top_k,
                max_rows_per_run=self.serving.max_rows_per_run,
                kill_on_text=self.serving.fault_kill_on_text,
            ),
            self.table.resolve,
            self.cache.pinned,
        )
        self.stats = StatsAccumulator(
            StatsIdentity(settings.worker_id, settings.group_id, int(time.time() * 1000)),
            interval_ms=self.serving.stats_interval_ms,
        )
        self.rebalance = RebalanceTracker()
        self.assigned: set[Partition] = set()
        self.pauses = RetryPauses()
        self.retry_steps = RetrySteps()
        self.sizing = PassSizing.of(
            self.serving.max_batch, self.serving.max_pass, self.serving.pass_budget_ms
        )
        self.pass_size = self.sizing.floor
        self.metrics.pass_size.set(self.pass_size)
        self._step_reader: Consumer | None = None
        self._step_ends: Consumer | None = None
        self.rejected: dict[Coordinates, Verdict] = {}  # refused on delivery: dead letters next
        self._stop = threading.Event()
        self._heartbeat = time.monotonic()
        self._committer: Committer | None = None
        self._consumer: Consumer | None = None
        self._facts: FactsLookup | None = None
        self._clean_exit = False

    def _processor_config(self) -> ProcessorConfig:
        return ProcessorConfig(
            dead_letters_topic=self.topics.dead_letters,
            default_stage=self.settings.stage.value,
            max_record_bytes=self.serving.max_record_bytes,
            max_rows_per_bot=self.serving.max_rows_per_bot,
            reply_targets=ReplyTargets(
                allowed=default_allowlist(self.topics.replies, self.serving.reply_to_allow),
                control_names=self.topics.control_names,
                facts=CachedFacts(self._topic_facts),
            ),
            retry_topic=self.topics.retry,
            backoff=BackoffPolicy(
                base_ms=self.serving.retry_base_ms,
                max_ms=self.serving.retry_max_ms,
                max_attempts=self.serving.retry_max_attempts,
            ),
        )

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Safe from a signal handler: the loop finishes its pass, commits and closes."""
        self._stop.set()

    def run(
        self,
        ready: threading.Event | None = None,
        on_serving: Callable[[], None] | None = None,
    ) -> None:
        """Serve until ``request_stop``. ``ready`` is set and ``on_serving`` called once the
        worker is subscribed and about to take its first pass."""
        self.ops.start()
        self.tailer.start()
        self.breaker.start()
        try:
            if not self._wait_for_control_topics():
                return
            warm_up()  # numba's compiled featurizer, loaded before the first pass needs it
            preload_schemas()  # compiled now: a broken schema stops start-up, not a pass
            self._committer = serving_committer(self.settings, self.processor.outcomes.rescue)
            self._committer.start()
            self._consumer = serving_consumer(self.settings)
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
            if on_serving is not None:
                on_serving()
            self._loop(self._consumer, self._committer)
            self._clean_exit = True
        finally:
            self._close()

    def _wait_for_control_topics(self) -> bool:
        waited = 0.0
        while not self._stop.is_set():
            self._heartbeat = time.monotonic()
            if self.tailer.wait_caught_up(1.0) and self.breaker.ready(1.0):
                logger.info("routing table caught up: %d bots", len(self.table))
                return True
            if not self.tailer.healthy:
                raise FatalError(f"cannot read the deployments topic {self.topics.deployments}")
            if not self.breaker.healthy:
                raise FatalError(f"cannot read the crashes topic {self.topics.crashes}")
            waited += 1.0
            if waited % 10 == 0:
                logger.warning("still catching up with the control topics after %.0f s", waited)
        return False

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()  # leaves the group: its partitions move at once
        for reader in (self._step_reader, self._step_ends):
            if reader is not None:
                reader.close()
        if self._committer is not None:
            self._committer.close()
        self.tailer.stop()
        self.breaker.stop(clean=self._clean_exit)
        self.cache.close()
        self.ops.stop()
        logger.info("worker %s stopped", self.identity.worker_id)

    # -- the loop --------------------------------------------------------------------------

    def _loop(self, consumer: Consumer, committer: Committer) -> None:
        while not self._stop.is_set():
            self._heartbeat = time.monotonic()
            self.pauses.resume_due(consumer, self.processor.context.clock_ms())
            messages = self._poll(consumer)
            records = self._records(messages)
            self._note_rebalance_window()
            if records or self.stats.due():  # an idle worker still flushes its statistics
                seconds = self._one_pass(consumer, committer, records)
                self._resize(len(messages), seconds)
        self.stats.closing()
        if self.stats.due():
            self._one_pass(consumer, committer, [])

    def _resize(self, polled: int, seconds: float) -> None:
        size = next_pass_size(self.pass_size, polled, seconds, self.sizing)
        if size != self.pass_size:
            logger.debug("pass size %d -> %d (%d polled in %.3f s)", self.pass_size, size,
                         polled, seconds)  # fmt: skip
            self.pass_size = size
            self.metrics.pass_size.set(size)

    def _poll(self, consumer: Consumer) -> list[Message]:
        """What is already fetched, up to the pass size; else wait for the first record.

        ``consume(n, timeout)`` waits until n records or the timeout, so at low load every
        query would wait out the timeout; this returns as soon as anything is there, and
        batches grow by themselves while a pass is busy.
        """
        messages = consumer.consume(self.pass_size, 0)
        if messages:
            return messages
        first = consumer.poll(self.serving.poll_timeout_s)
        if first is None:
            return []
        return [first, *consumer.consume(self.pass_size - 1, 0)]

    def _one_pass(
        self, consumer: Consumer, committer: Committer, records: Sequence[InboundRecord]
    ) -> float:
        """Process, produce and commit one pass; its seconds."""
        started = time.perf_counter()
        judgement = self.breaker.judge(records)
        if judgement.step is not None:
            # Crash evidence on this partition: one record per pass until it is resolved.
            rewind(consumer, unprocessed_heads(records, [judgement.step]))
            records = [judgement.step]
        result = self.processor.process(
            records,
            verdicts={**judgement.poisoned, **self.rejected},
            before=lambda taken: self.breaker.begin(taken, self.processor.context.clock_ms()),
            step_done=self.retry_steps.done,
            superseded=self.retry_steps.superseded if self.retry_steps.visible else None,
            max_rows_per_bot=self.serving.rows_per_bot(self.pass_size),
        )
        if result.resume:
            # Offsets polled but not processed (a fair share, a retry not yet due): again.
            rewind(consumer, result.resume)
            self.metrics.deferred.inc(len(result.resume))
        self.pauses.hold(consumer, result.pause_until, self.assigned)
        flush = self.stats.flush_records()  # committed with the pass, or kept for the next
        result.outputs += [Output(self.topics.bot_stats, k, v, kind="stats") for k, v in flush]
        if committer.commit(consumer, result):
            self.stats.committed((output.facts for output in result.outputs), flushed=bool(flush))
            self._count(result)
            self.breaker.committed(result.next_offsets)
            for where, steps in result.retry_steps.items():
                self.retry_steps.remember(where, steps)
            for output in result.outputs:
                if output.record is not None:
                    self.rejected.pop(output.record.coordinates, None)
        else:
            self.metrics.aborted.inc()
            self.rejected.update(committer.take_rejections())
            self._read_retry_tails()  # what the aborted pass wrote may still be read
        seconds = time.perf_counter() - started
        self.metrics.batch_seconds.observe(seconds)
        return seconds

    def _records(self, messages: list[Message]) -> list[InboundRecord]:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(inbound_record(message))
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
            self.cache.retire(change.bot_id, keep=self.table.routes(change.bot_id))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._assignment_changed(f"+{len(partitions)} partitions")
        for tp in partitions:
            if tp.topic == self.topics.retry:
                self._read_back_steps(consumer, (tp.topic, tp.partition))
        if partitions:
            self._read_retry_tails()

    def _read_retry_tails(self) -> None:
        if self.topics.retry is None:
            return
        try:
            visible = self.retry_steps.read_tails(
                self._reader(), self._ends_reader(), self.topics.retry
            )
        except (KafkaException, KafkaUnavailable) as exc:  # a re-read step may be answered twice
            logger.warning("could not read the tail of %s: %s", self.topics.retry, exc)
            return
        logger.info("retry steps visible at the end of %s: %d", self.topics.retry, visible)

    def _reader(self) -> Consumer:
        if self._step_reader is None:
            self._step_reader = step_reader(self.settings)
        return self._step_reader

    def _ends_reader(self) -> Consumer:
        if self._step_ends is None:
            self._step_ends = ends_reader(self.settings.kafka)
        return self._step_ends

    def _read_back_steps(self, consumer: Consumer, where: Partition) -> None:
        try:
            learned = self.retry_steps.read_back(self._reader(), consumer, where)
        except KafkaException as exc:  # a later copy may then be processed twice: say so
            logger.warning("could not read back retry steps of %s[%d]: %s", *where, exc)
            return
        logger.info("retry steps of %s[%d] read back: %d", *where, learned)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned.difference_update(gone)
        self.pauses.forget(gone)
        self.retry_steps.forget(gone)
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

    def _topic_facts(self, topic: str) -> TopicFacts | None:
        if self._consumer is None:  # not serving yet: nothing to check against
            return UNCHECKED
        if self._facts is None:
            self._facts = cluster_lookup(self._consumer, admin_client(self.settings.kafka))
        return self._facts(topic)

    def health(self) -> HealthReport:
        return evaluate_health(
            HealthInputs(
                assigned_partitions=len(self.assigned),
                deployments_caught_up=self.tailer.caught_up and self.breaker.ledger.caught_up,
                producer_healthy=self._committer is not None and self._committer.healthy(),
                loop_heartbeat_age_s=time.monotonic() - self._heartbeat,
                stopping=self._stop.is_set(),
            )
        )
