"""One pass over a polled batch: every taken record becomes exactly one encoded output."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import orjson

from fleetserve.contracts import MessageKind, encode
from fleetserve.deadletters import reasons
from fleetserve.deadletters.build import Failure, build_dead_letter
from fleetserve.kafka.records import InboundRecord
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


@dataclass
class PassResult:
    outputs: list[Output] = field(default_factory=list)
    next_offsets: dict[Partition, int] = field(default_factory=dict)
    first_offsets: dict[Partition, int] = field(default_factory=dict)
    rewind: dict[Partition, int] = field(default_factory=dict)
    replies: Counter[str] = field(default_factory=Counter)  # by stage
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason


@dataclass(frozen=True)
class ProcessorConfig:
    dead_letters_topic: str
    default_stage: str
    max_record_bytes: int
    max_rows_per_bot: int
    control_topics: Collection[str] = ()  # never a reply_to target


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
        take = fair_take(records, self.config.max_rows_per_bot)
        result = PassResult(rewind=take.rewind)
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
            result.outputs.append(self._dead_letter(record, failure))
            result.dead_letters[failure.reason] += 1
        return result

    def _check_reply_to(self, query: DecodedQuery) -> DecodedQuery | Failure:
        target = (query.query.get("reply_to") or {}).get("topic")
        if target is not None and target in self.config.control_topics:
            return query.failure(
                reasons.SCHEMA,
                reasons.PHASE_DECODE,
                f"reply_to.topic: {target} is a fleetserve control topic, not a reply topic",
            )
        return query

    def _dead_letter(self, record: InboundRecord, failure: Failure) -> Output:
        value: dict[str, Any] = build_dead_letter(
            record, failure, self.context.worker, now_ms=self.context.clock_ms()
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
            self.config.dead_letters_topic, record.key, encode(MessageKind.DEAD_LETTER, value)
        )


def _track_offsets(result: PassResult, records: Sequence[InboundRecord]) -> None:
    for record in records:
        where = (record.topic, record.partition)
        result.first_offsets.setdefault(where, record.offset)
        result.next_offsets[where] = max(result.next_offsets.get(where, 0), record.offset + 1)
