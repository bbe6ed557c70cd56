"""One pass over a polled batch: every taken record becomes exactly one encoded output.

The last line of defence lives here. Whatever fails while one record is turned into its
output (decoding, answering, encoding, its own dead letter breaking the contract) ends
that record in a dead letter, never in an exception out of :meth:`BatchProcessor.process`:
a worker that died on a record would read it again on restart, and die again.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from fleetserve.contracts import MessageKind, encode
from fleetserve.deadletters import reasons
from fleetserve.deadletters.build import (
    Failure,
    Origin,
    Verdict,
    build_dead_letter,
    dead_letter_key,
    minimal_dead_letter,
)
from fleetserve.deadletters.headers import dead_letter_headers
from fleetserve.kafka.records import Coordinates, Headers, InboundRecord
from fleetserve.retry.backoff import BackoffPolicy
from fleetserve.retry.decide import after_transient_failure
from fleetserve.retry.dedupe import Step, step_of
from fleetserve.retry.state import RetryState, retried_origin, retry_headers
from fleetserve.routing import Route
from fleetserve.serving.answer import AnswerContext, BatchOutcome, Models, Reply, answer_batch
from fleetserve.serving.decode import DecodedQuery, decode_query, salvage
from fleetserve.serving.plan import Resolve, plan_batch, select
from fleetserve.serving.targets import ReplyTargets
from fleetserve.stats.facts import OutcomeFacts, dead_letter_facts, reply_facts

logger = logging.getLogger(__name__)

Partition = tuple[str, int]
PinModels = Callable[[Sequence[Route]], AbstractContextManager[Models]]
OutputKind = Literal["reply", "dead_letter", "retry", "stats"]


@dataclass(frozen=True, slots=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    partition: int | None = None
    headers: Headers = ()
    record: InboundRecord | None = None
    """The consumed record this output is the outcome of."""
    kind: OutputKind = "reply"
    label: str = ""
    """The stage of a reply; the reason of a dead letter or a retry (for the counters)."""
    facts: OutcomeFacts | None = None
    """What a reply or dead letter adds to its bot's statistics once committed."""


@dataclass
class PassResult:
    outputs: list[Output] = field(default_factory=list)
    next_offsets: dict[Partition, int] = field(default_factory=dict)
    first_offsets: dict[Partition, int] = field(default_factory=dict)
    resume: dict[Partition, int] = field(default_factory=dict)
    pause_until: dict[Partition, int] = field(default_factory=dict)  # retry heads not due
    replies: Counter[str] = field(default_factory=Counter)  # by stage
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason
    retries: Counter[str] = field(default_factory=Counter)  # by the failure's reason
    retry_steps: dict[Partition, list[Step]] = field(default_factory=dict)
    """The retry steps this pass processed, per retry partition: done once it commits."""
    repeated_steps: int = 0
    """Copies of retry steps already processed: skipped, no output (retry/dedupe.py)."""

    def swap(self, index: int, stand_in: Output) -> None:
        """Replace output ``index`` (one the broker refused) and keep the counters true."""
        self._count(self.outputs[index], -1)
        self.outputs[index] = stand_in
        self._count(stand_in, +1)

    def _count(self, output: Output, step: int) -> None:
        counter = {"reply": self.replies, "dead_letter": self.dead_letters}.get(
            output.kind, self.retries
        )
        counter[output.label] += step


@dataclass(frozen=True)
class ProcessorConfig:
    dead_letters_topic: str
    default_stage: str
    max_record_bytes: int
    max_rows_per_bot: int
    reply_targets: ReplyTargets = field(default_factory=ReplyTargets)
    retry_topic: str | None = None  # None: transient failures are dead letters at once
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    draw: Callable[[], float] = random.random  # jitter; tests pass a fixed one


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

    def process(
        self,
        records: Sequence[InboundRecord],
        verdicts: Mapping[Coordinates, Verdict] | None = None,
        before: Callable[[Sequence[InboundRecord]], None] | None = None,
        step_done: Callable[[Partition, Step], bool] | None = None,
    ) -> PassResult:
        """Every selected record ends in exactly one output; ``verdicts`` are not processed.

        ``before`` hears which records the pass selected, before any of them is touched.
        ``step_done`` says which retry steps the group already processed: a copy of one
        (retry/dedupe.py) is skipped, its offset consumed, nothing produced.
        """
        selection = select(
            records,
            retry_topic=self.config.retry_topic,
            now_ms=self.context.clock_ms(),
            max_rows_per_bot=self.config.max_rows_per_bot,
        )
        if before is not None:
            before(selection.records)
        result = PassResult(resume=selection.resume, pause_until=selection.pause_until)
        _track_offsets(result, selection.records)
        queries: list[DecodedQuery] = []
        refused: list[tuple[InboundRecord, Failure]] = []
        for record in selection.records:
            verdict = verdicts.get(record.coordinates) if verdicts else None
            if verdict is not None:
                self._emit_verdict(record, verdict, result)
                continue
            if self._repeated_step(record, result, step_done):
                continue
            decoded = self._decode(record)
            if isinstance(decoded, Failure):
                refused.append((record, decoded))
            else:
                queries.append(decoded)
        outcome = self._answer(queries)
        for reply in outcome.replies:
            self._emit_reply(reply, result)
        for record, failure in [*refused, *outcome.failed]:
            self._emit_failure(record, failure, result)
        return result

    # -- turning records into outcomes ------------------------------------------------------

    def _repeated_step(
        self,
        record: InboundRecord,
        result: PassResult,
        step_done: Callable[[Partition, Step], bool] | None,
    ) -> bool:
        if record.topic != self.config.retry_topic:
            return False
        origin = self._safe_origin(record)
        step, where = step_of(origin), (record.topic, record.partition)
        steps = result.retry_steps.setdefault(where, [])
        if step in steps or (step_done is not None and step_done(where, step)):
            logger.warning("skipping a second copy of retry step %s at %s", step, record.where)
            result.repeated_steps += 1
            return True
        steps.append(step)
        return False

    def _decode(self, record: InboundRecord) -> DecodedQuery | Failure:
        try:
            origin = self._origin(record)
            decoded = decode_query(
                record,
                max_bytes=self.config.max_record_bytes,
                default_stage=self.config.default_stage,
                origin=origin,
            )
            return decoded if isinstance(decoded, Failure) else self._check_reply_to(decoded)
        except Exception as exc:  # a bug on one record must not stop its partition
            logger.exception("decoding %s failed", record.where)
            return _internal(exc, reasons.PHASE_DECODE)

    def _answer(self, queries: list[DecodedQuery]) -> BatchOutcome:
        """Answer the pass at once; if that raises, one query at a time, to find the culprit."""
        try:
            return self._answer_all(queries)
        except Exception:
            logger.exception("answering a pass of %d queries failed; one by one", len(queries))
        outcome = BatchOutcome()
        for query in queries:
            try:
                one = self._answer_all([query])
            except Exception as exc:
                logger.exception("answering bot=%s at %s failed", query.bot_id, query.record.where)
                failure = _internal(exc, reasons.PHASE_INFER)
                one = BatchOutcome(failed=[(query.record, _with_query(failure, query))])
            outcome.replies += one.replies
            outcome.failed += one.failed
        return outcome

    def _answer_all(self, queries: list[DecodedQuery]) -> BatchOutcome:
        plan = plan_batch(queries, self.resolve, self.context.clock_ms())
        with self.pin_models(plan.routes) as models:
            return answer_batch(plan, models, self.context)

    def _check_reply_to(self, query: DecodedQuery) -> DecodedQuery | Failure:
        reply_to = query.query.get("reply_to") or {}
        problem = self.config.reply_targets.problem(
            reply_to.get("topic"), reply_to.get("partition")
        )
        if problem is None:
            return query
        return query.failure(reasons.SCHEMA, reasons.PHASE_DECODE, problem)

    def _origin(self, record: InboundRecord) -> Origin | None:
        # Only the retry topic's fleetserve_retry-* headers are ours; on any other topic
        # they are a caller's bytes and stay exactly that.
        if record.topic != self.config.retry_topic:
            return None
        return retried_origin(record)

    # -- encoding outcomes, each guarded -----------------------------------------------------

    def _emit_reply(self, reply: Reply, result: PassResult) -> None:
        try:
            value = orjson.dumps(reply.value)
        except Exception as exc:
            logger.exception("encoding the reply to %s failed", reply.record.where)
            failure = _internal(exc, reasons.PHASE_PUBLISH)
            self._emit_failure(reply.record, failure, result)
            return
        stage = reply.value["stage"]
        output = Output(
            reply.topic,
            reply.record.key,
            value,
            reply.partition,
            record=reply.record,
            label=stage,
            facts=reply_facts(reply.value),
        )
        result.outputs.append(output)
        result.replies[stage] += 1

    def _emit_failure(self, record: InboundRecord, failure: Failure, result: PassResult) -> None:
        origin = self._safe_origin(record)
        if failure.retriable and self.config.retry_topic is not None:
            step = after_transient_failure(
                failure,
                self.config.backoff,
                origin=origin,
                now_ms=self.context.clock_ms(),
                draw=self.config.draw(),
            )
            if isinstance(step, RetryState):
                result.outputs.append(self._retry(record, failure, step, origin))
                result.retries[failure.reason] += 1
                return
            failure = step
        result.outputs.append(self._dead_letter(record, failure, origin))
        result.dead_letters[failure.reason] += 1

    def _emit_verdict(self, record: InboundRecord, verdict: Verdict, result: PassResult) -> None:
        result.outputs.append(self.verdict_output(record, verdict))
        result.dead_letters[verdict.reason] += 1

    def verdict_output(self, record: InboundRecord, verdict: Verdict) -> Output:
        """The dead letter of a record decided without processing it."""
        # The value is only read within the worker's size cap: whatever killed workers on
        # this record, parsing more than a query's worth of it must not be the next crash.
        small = len(record.value or b"") <= self.config.max_record_bytes
        known = _known_context(record) if small else _key_context(record)
        failure = Failure(verdict.reason, verdict.phase, verdict.message, **known)
        origin = self._safe_origin(record)
        if not verdict.minimal:
            return self._dead_letter(record, failure, origin)
        value = minimal_dead_letter(
            record,
            failure,
            self.context.worker,
            now_ms=self.context.clock_ms(),
            why=verdict.message,
            origin=origin,
        )
        return self._dead_letter_output(record, value)

    def rescue(self, output: Output, verdict: Verdict) -> Output:
        """The dead letter standing in for ``output``, which the broker refused."""
        assert output.record is not None
        return self.verdict_output(output.record, verdict)

    def _retry(
        self, record: InboundRecord, failure: Failure, state: RetryState, origin: Origin
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
        headers = (*origin.headers, *retry_headers(state))
        value = record.value or b""  # never empty: only decoded queries fail transiently
        return Output(
            self.config.retry_topic,
            record.key,
            value,
            headers=headers,
            record=record,
            kind="retry",
            label=failure.reason,
        )

    def _dead_letter(self, record: InboundRecord, failure: Failure, origin: Origin) -> Output:
        logger.info(
            "dead letter %s (phase %s) bot=%s at %s: %s",
            failure.reason,
            failure.phase,
            failure.bot_id,
            record.where,
            failure.message,
        )
        now_ms = self.context.clock_ms()
        try:
            value = build_dead_letter(
                record, failure, self.context.worker, now_ms=now_ms, origin=origin
            )
            return self._dead_letter_output(record, value, validate=True)
        except Exception as exc:  # our own dead letter broke its contract: a bug, not the record's
            logger.exception("the dead letter of %s broke its contract", record.where)
            value = minimal_dead_letter(
                record,
                failure,
                self.context.worker,
                now_ms=now_ms,
                why=f"the full dead letter could not be encoded ({type(exc).__name__}: {exc})",
                origin=origin,
            )
            return self._dead_letter_output(record, value)

    def _dead_letter_output(
        self, record: InboundRecord, value: dict[str, Any], *, validate: bool = False
    ) -> Output:
        # A minimal dead letter is built inside its contract (tests hold it to that), and
        # validating it could only turn a bug there into a lost record.
        encoded = encode(MessageKind.DEAD_LETTER, value) if validate else orjson.dumps(value)
        return Output(
            self.config.dead_letters_topic,
            dead_letter_key(record.key),
            encoded,
            headers=tuple(dead_letter_headers(value)),
            record=record,
            kind="dead_letter",
            label=value["reason"],
            facts=dead_letter_facts(value),
        )

    def _safe_origin(self, record: InboundRecord) -> Origin:
        try:
            return self._origin(record) or Origin.of(record)
        except Exception:
            logger.exception("reading the retry state of %s failed", record.where)
            return Origin.of(record)


def _internal(exc: BaseException, phase: str) -> Failure:
    kind = type(exc)
    return Failure(
        reasons.INTERNAL_ERROR,
        phase,
        f"fleetserve failed on this record: {kind.__name__}: {exc}",
        error_type=f"{kind.__module__}.{kind.__qualname__}",
    )


def _with_query(failure: Failure, query: DecodedQuery) -> Failure:
    return query.failure(
        failure.reason, failure.phase, failure.message, error_type=failure.error_type
    )


def _key_context(record: InboundRecord) -> dict[str, Any]:
    """The bot id from the key alone (by contract the key is the bot id)."""
    return {"bot_id": (record.key or b"").decode("utf-8", "replace")}


def _known_context(record: InboundRecord) -> dict[str, Any]:
    try:
        return salvage(record.value)
    except Exception:  # best effort: the verdict stands without the bot's name
        return {}


def _track_offsets(result: PassResult, records: Sequence[InboundRecord]) -> None:
    for record in records:
        where = (record.topic, record.partition)
        result.first_offsets.setdefault(where, record.offset)
        result.next_offsets[where] = max(result.next_offsets.get(where, 0), record.offset + 1)
