"""One pass over a polled batch: every taken record becomes exactly one encoded output.

The last line of defence lives here. Whatever fails while one record is turned into its
output (decoding, answering, encoding, its own dead letter breaking the contract) ends
that record in a dead letter, never in an exception out of :meth:`BatchProcessor.process`:
a worker that died on a record would read it again on restart, and die again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from fleetserve.core.backoff import BackoffPolicy
from fleetserve.core.outcome import Failure, Verdict
from fleetserve.core.records import Coordinates, InboundRecord, Partition
from fleetserve.core.route import Route
from fleetserve.deadletters import reasons
from fleetserve.retry.dedupe import Step, step_of
from fleetserve.serving.answer import AnswerContext, BatchOutcome, Models, answer_batch
from fleetserve.serving.decode import DecodedQuery, decode_query
from fleetserve.serving.outcomes import OutcomeConfig, OutcomeWriter, internal_failure
from fleetserve.serving.outputs import PassResult, track_offsets
from fleetserve.serving.plan import Resolve, plan_batch, select
from fleetserve.serving.targets import ReplyTargets

logger = logging.getLogger(__name__)

PinModels = Callable[[Sequence[Route]], AbstractContextManager[Models]]


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

    def outcomes(self) -> OutcomeConfig:
        return OutcomeConfig(
            self.dead_letters_topic,
            self.max_record_bytes,
            self.retry_topic,
            self.backoff,
            self.draw,
        )


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
        self.outcomes = OutcomeWriter(config.outcomes(), context)

    def process(
        self,
        records: Sequence[InboundRecord],
        verdicts: Mapping[Coordinates, Verdict] | None = None,
        before: Callable[[Sequence[InboundRecord]], None] | None = None,
        step_done: Callable[[Partition, Step], bool] | None = None,
        superseded: Callable[[Step], bool] | None = None,
        max_rows_per_bot: int | None = None,
    ) -> PassResult:
        """Every selected record ends in exactly one output; ``verdicts`` are not processed.

        ``before`` hears which records the pass selected, before any of them is touched.
        ``step_done`` says which retry steps the group already processed: a copy of one
        (retry/dedupe.py) is skipped, its offset consumed, nothing produced. So is a record
        whose query already has its next step in the retry topic (``superseded``).
        ``max_rows_per_bot`` is one bot's share of this pass (default: the configured one).
        """
        selection = select(
            records,
            retry_topic=self.config.retry_topic,
            now_ms=self.context.clock_ms(),
            max_rows_per_bot=max_rows_per_bot or self.config.max_rows_per_bot,
        )
        if before is not None:
            before(selection.records)
        result = PassResult(resume=selection.resume, pause_until=selection.pause_until)
        track_offsets(result, selection.records)
        queries: list[DecodedQuery] = []
        refused: list[tuple[InboundRecord, Failure]] = []
        for record in selection.records:
            verdict = verdicts.get(record.coordinates) if verdicts else None
            if verdict is not None:
                self.outcomes.verdict(record, verdict, result)
                continue
            if self._repeated_step(record, result, step_done):
                continue
            if superseded is not None and self._superseded(record, result, superseded):
                continue
            decoded = self._decode(record)
            if isinstance(decoded, Failure):
                refused.append((record, decoded))
            else:
                queries.append(decoded)
        outcome = self._answer(queries)
        for reply in outcome.replies:
            self.outcomes.reply(reply, result)
        for record, failure in [*refused, *outcome.failed]:
            self.outcomes.failure(record, failure, result)
        return result

    def _repeated_step(
        self,
        record: InboundRecord,
        result: PassResult,
        step_done: Callable[[Partition, Step], bool] | None,
    ) -> bool:
        if record.topic != self.config.retry_topic:
            return False
        origin = self.outcomes.safe_origin(record)
        step, where = step_of(origin), (record.topic, record.partition)
        steps = result.retry_steps.setdefault(where, [])
        if step in steps or (step_done is not None and step_done(where, step)):
            logger.warning("skipping a second copy of retry step %s at %s", step, record.where)
            result.repeated_steps += 1
            return True
        steps.append(step)
        return False

    def _superseded(
        self, record: InboundRecord, result: PassResult, superseded: Callable[[Step], bool]
    ) -> bool:
        if record.topic == self.config.retry_topic:
            step = step_of(self.outcomes.safe_origin(record))
        else:  # a query's first try: no headers to read
            step = (record.topic, record.partition, record.offset, 1)
        if not superseded(step):
            return False
        logger.warning(
            "skipping %s: the next try of its query (step %s) is already in the retry topic",
            record.where,
            step,
        )
        result.repeated_steps += 1
        return True

    def _decode(self, record: InboundRecord) -> DecodedQuery | Failure:
        try:
            origin = self.outcomes.origin(record)
            decoded = decode_query(
                record,
                max_bytes=self.config.max_record_bytes,
                default_stage=self.config.default_stage,
                origin=origin,
            )
            return decoded if isinstance(decoded, Failure) else self._check_reply_to(decoded)
        except Exception as exc:  # a bug on one record must not stop its partition
            logger.exception("decoding %s failed", record.where)
            return internal_failure(exc, reasons.PHASE_DECODE)

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
                failure = internal_failure(exc, reasons.PHASE_INFER)
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


def _with_query(failure: Failure, query: DecodedQuery) -> Failure:
    return query.failure(
        failure.reason, failure.phase, failure.message, error_type=failure.error_type
    )
