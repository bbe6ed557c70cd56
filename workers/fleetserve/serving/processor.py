"""One pass over a polled batch: every taken record becomes exactly one encoded output."""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import orjson

from fleetserve.contracts import MessageKind, encode
from fleetserve.deadletters import reasons
from fleetserve.deadletters.build import Failure, build_dead_letter
from fleetserve.deadletters.headers import dead_letter_headers
from fleetserve.kafka.records import Headers, InboundRecord
from fleetserve.retry.backoff import BackoffPolicy
from fleetserve.retry.decide import after_transient_failure
from fleetserve.retry.due import split_due
from fleetserve.retry.state import RetryState, original_headers, retry_headers, retry_state
from fleetserve.routing import Route
from fleetserve.serving.answer import AnswerContext, Models, answer_batch
from fleetserve.serving.decode import DecodedQuery, decode_query
from fleetserve.serving.plan import Resolve, fair_take, plan_batch

logger = logging.getLogger(__name__)

Partition = tuple[str, int]
PinModels = Callable[[Sequence[Route]], AbstractContextManager[Models]]


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None
    headers: Headers = ()


@dataclass
class PassResult:
    outputs: list[Output] = field(default_factory=list)
    next_offsets: dict[Partition, int] = field(default_factory=dict)
    first_offsets: dict[Partition, int] = field(default_factory=dict)
    rewind: dict[Partition, int] = field(default_factory=dict)
    held: dict[Partition, tuple[int, int]] = field(default_factory=dict)  # retry: offset, due
    replies: Counter[str] = field(default_factory=Counter)  # by stage
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason
    retries: Counter[str] = field(default_factory=Counter)  # by the failure's reason


@dataclass(frozen=True)
class ProcessorConfig:
    dead_letters_topic: str
    default_stage: str
    max_record_bytes: int
    max_rows_per_bot: int
    control_topics: Collection[str] = ()  # never a reply_to target
    retry_topic: str | None = None  # None: transient failures are dead letters at once
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    draw: Callable[[], float] = random.random  # jitter; tests pass a fixed one
    # Partition count of a topic, None when it does not exist; None: reply_to unchecked.
    partitions_of: Callable[[str], int | None] | None = None


class BatchProcessor:
    """Decode, share fairly, route, load (pinned), answer, encode. No Kafka client here."""

    def __init__(
        self,
        config: ProcessorConfig,
        context: AnswerContext,
        resolve: Resolve,
        pin_models: PinModels,
    ) -> None:
        self.config = config
        self.context = context
        self.resolve = resolve
        self.pin_models = pin_models

    def process(self, records: Sequence[InboundRecord]) -> PassResult:
        held: dict[Partition, tuple[int, int]] = {}
        if self.config.retry_topic is not None:
            split = split_due(records, self.config.retry_topic, self.context.clock_ms())
            records, held = split.due, split.held
        take = fair_take(records, self.config.max_rows_per_bot)
        result = PassResult(rewind=take.rewind, held=held)
        _track_offsets(result, take.records)
        queries: list[DecodedQuery] = []
        refused: list[tuple[InboundRecord, Failure]] = []
        for record in take.records:
            decoded = decode_query(
                record,
                max_bytes=self.config.max_record_bytes,
                default_stage=self.config.default_stage,
            )
            checked = decoded if isinstance(decoded, Failure) else self._check_reply_to(decoded)
            if isinstance(checked, Failure):
                refused.append((record, checked))
            else:
                queries.append(checked)
        plan = plan_batch(queries, self.resolve, self.context.clock_ms())
        plan.failed.extend(refused)
        with self.pin_models(plan.routes) as models:
            outcome = answer_batch(plan, models, self.context)
        for reply in outcome.replies:
            result.outputs.append(
                Output(reply.topic, reply.record.key, orjson.dumps(reply.value), reply.partition)
            )
            result.replies[reply.value["stage"]] += 1
        for record, failure in outcome.failed:
            self._failed(record, failure, result)
        return result

    def _failed(self, record: InboundRecord, failure: Failure, result: PassResult) -> None:
        # Only the retry topic's fleetserve_retry-* headers are ours; on any other topic
        # they are a caller's bytes and stay exactly that.
        prior = retry_state(record) if record.topic == self.config.retry_topic else None
        if failure.retriable and self.config.retry_topic is not None:
            step = after_transient_failure(
                record,
                failure,
                self.config.backoff,
                now_ms=self.context.clock_ms(),
                draw=self.config.draw(),
                prior=prior,
            )
            if isinstance(step, RetryState):
                result.outputs.append(self._retry(record, failure, step, prior))
                result.retries[failure.reason] += 1
                return
            failure = step
        result.outputs.append(self._dead_letter(record, failure, prior))
        result.dead_letters[failure.reason] += 1

    def _retry(
        self, record: InboundRecord, failure: Failure, state: RetryState, prior: RetryState | None
    ) -> Output:
        assert self.config.retry_topic is not None
        logger.info(
            "retry %d of bot=%s at %s due in %d ms: %s",
            state.attempts,
            failure.bot_id,
            record.where,
            state.not_before_ms - self.context.clock_ms(),
            state.message,
        )
        own = record.headers if prior is None else original_headers(record)
        headers = (*own, *retry_headers(state))
        value = record.value or b""  # never empty: only decoded queries fail transiently
        return Output(self.config.retry_topic, record.key, value, headers=headers)

    def _check_reply_to(self, query: DecodedQuery) -> DecodedQuery | Failure:
        reply_to = query.query.get("reply_to") or {}
        problem = reply_target_problem(
            reply_to.get("topic"),
            reply_to.get("partition"),
            self.config.control_topics,
            self.config.partitions_of,
        )
        if problem is None:
            return query
        return query.failure(reasons.SCHEMA, reasons.PHASE_DECODE, problem)

    def _dead_letter(
        self, record: InboundRecord, failure: Failure, prior: RetryState | None
    ) -> Output:
        value: dict[str, Any] = build_dead_letter(
            record, failure, self.context.worker, now_ms=self.context.clock_ms(), retried=prior
        )
        logger.info(
            "dead letter %s (phase %s) bot=%s at %s: %s",
            failure.reason,
            failure.phase,
            failure.bot_id,
            record.where,
            failure.message,
        )
        return Output(
            self.config.dead_letters_topic,
            record.key,
            encode(MessageKind.DEAD_LETTER, value),
            headers=tuple(dead_letter_headers(value)),
        )


def reply_target_problem(
    topic: str | None,
    partition: int | None,
    control_topics: Collection[str],
    partitions_of: Callable[[str], int | None] | None,
) -> str | None:
    """Why a query's reply_to cannot be produced to, or None when it can.

    Checked before any work: a reply the producer refuses (unknown topic or partition)
    would fail the whole pass's transaction, again on every re-read.
    """
    if topic is None:
        return None
    if topic in control_topics:
        return f"reply_to.topic: {topic} is a fleetserve control topic, not a reply topic"
    if partitions_of is None:
        return None
    count = partitions_of(topic)
    if count is None:
        return f"reply_to.topic: {topic} does not exist"
    if partition is not None and partition >= count:
        return f"reply_to.partition: {topic} has {count} partitions, not {partition + 1}"
    return None


def _track_offsets(result: PassResult, records: Sequence[InboundRecord]) -> None:
    for record in records:
        where = (record.topic, record.partition)
        result.first_offsets.setdefault(where, record.offset)
        result.next_offsets[where] = max(result.next_offsets.get(where, 0), record.offset + 1)
