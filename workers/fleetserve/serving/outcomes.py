"""Each record's outcome encoded: its reply, its retry record, or its dead letter.

Every path here is guarded: an outcome that cannot be encoded, or a dead letter that
breaks its own contract, falls back to a minimal dead letter (deadletters/build.py),
which is built inside the contract by construction.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from fleetserve.contracts.codec import encode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.backoff import BackoffPolicy
from fleetserve.core.outcome import Failure, Origin, Verdict
from fleetserve.core.records import InboundRecord
from fleetserve.deadletters import reasons
from fleetserve.deadletters.build import build_dead_letter, dead_letter_key, minimal_dead_letter
from fleetserve.deadletters.headers import dead_letter_headers
from fleetserve.retry.decide import after_transient_failure
from fleetserve.retry.state import RetryState, retried_origin, retry_headers
from fleetserve.serving.answer import AnswerContext
from fleetserve.serving.decode import salvage
from fleetserve.serving.outputs import Output, PassResult
from fleetserve.serving.replies import Reply
from fleetserve.stats.facts import dead_letter_facts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutcomeConfig:
    dead_letters_topic: str
    max_record_bytes: int
    retry_topic: str | None = None  # None: transient failures are dead letters at once
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    draw: Callable[[], float] = random.random  # jitter; tests pass a fixed one


class OutcomeWriter:
    """Turns replies, failures and verdicts into the pass's outputs, and counts them."""

    def __init__(self, config: OutcomeConfig, context: AnswerContext) -> None:
        self.config = config
        self.context = context

    def origin(self, record: InboundRecord) -> Origin | None:
        """The query as first read, for a record from the retry tier; None otherwise."""
        # Only the retry topic's fleetserve_retry-* headers are ours; on any other topic
        # they are a caller's bytes and stay exactly that.
        if record.topic != self.config.retry_topic:
            return None
        return retried_origin(record)

    def reply(self, reply: Reply, result: PassResult) -> None:
        try:
            value = reply.encode()
        except Exception as exc:
            logger.exception("encoding the reply to %s failed", reply.record.where)
            failure = replace(
                internal_failure(exc, reasons.PHASE_PUBLISH),
                bot_id=reply.own.get("bot_id"),
                request_id=reply.own.get("request_id"),
                stage=reply.stage,
            )
            self.failure(reply.record, failure, result)
            return
        output = Output(
            reply.topic,
            reply.record.key,
            value,
            reply.partition,
            record=reply.record,
            label=reply.stage,
            facts=reply.facts,
        )
        result.outputs.append(output)
        result.replies[reply.stage] += 1

    def failure(self, record: InboundRecord, failure: Failure, result: PassResult) -> None:
        origin = self.safe_origin(record)
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

    def verdict(self, record: InboundRecord, verdict: Verdict, result: PassResult) -> None:
        result.outputs.append(self.verdict_output(record, verdict))
        result.dead_letters[verdict.reason] += 1

    def verdict_output(self, record: InboundRecord, verdict: Verdict) -> Output:
        """The dead letter of a record decided without processing it."""
        # The value is only read within the worker's size cap: whatever killed workers on
        # this record, parsing more than a query's worth of it must not be the next crash.
        small = len(record.value or b"") <= self.config.max_record_bytes
        known = _known_context(record) if small else _key_context(record)
        failure = Failure(verdict.reason, verdict.phase, verdict.message, **known)
        origin = self.safe_origin(record)
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

    def safe_origin(self, record: InboundRecord) -> Origin:
        try:
            return self.origin(record) or Origin.of(record)
        except Exception:
            logger.exception("reading the retry state of %s failed", record.where)
            return Origin.of(record)


def _key_context(record: InboundRecord) -> dict[str, Any]:
    """The bot id from the key alone (by contract the key is the bot id)."""
    return {"bot_id": (record.key or b"").decode("utf-8", "replace")}


def _known_context(record: InboundRecord) -> dict[str, Any]:
    try:
        return salvage(record.value)
    except Exception:  # best effort: the verdict stands without the bot's name
        return {}


def internal_failure(exc: BaseException, phase: str) -> Failure:
    kind = type(exc)
    return Failure(
        reasons.INTERNAL_ERROR,
        phase,
        f"fleetserve failed on this record: {kind.__name__}: {exc}",
        error_type=f"{kind.__module__}.{kind.__qualname__}",
    )
