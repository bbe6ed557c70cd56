"""Shape one polled batch: a fair share per bot, expired queries out, the rest by route."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fleetserve.core.outcome import Failure
from fleetserve.core.records import InboundRecord, Partition
from fleetserve.core.route import Route
from fleetserve.deadletters import reasons
from fleetserve.errors import QueryFailed
from fleetserve.retry.due import DueSplit, split_due
from fleetserve.serving.decode import DecodedQuery

Resolve = Callable[[str, str], Route]


@dataclass(frozen=True, slots=True)
class Selection:
    """What one pass processes, and where every partition it did not finish resumes."""

    records: list[InboundRecord]
    """Processed now: a prefix of each partition's polled records."""
    resume: dict[Partition, int]
    """Per partition, the first polled offset not processed: the next poll starts there."""
    pause_until: dict[Partition, int]
    """Retry partitions whose resume point is a record not yet due, and when it is due."""


def select(
    records: Sequence[InboundRecord],
    *,
    retry_topic: str | None,
    now_ms: int,
    max_rows_per_bot: int,
) -> Selection:
    """Due records, then a fair share per bot; every partition resumes at its first leftover.

    One rule places every partition, whatever held its records back (a retry not yet due,
    a bot over its share, or both): the first polled offset not processed. Deciding it per
    cause lost records when both applied to one retry partition.
    """
    due = split_due(records, retry_topic, now_ms) if retry_topic else DueSplit(list(records))
    taken = fair_take(due.due, max_rows_per_bot)
    resume = unprocessed_heads(records, taken)
    pause_until = {
        where: due_ms for where, (offset, due_ms) in due.held.items() if resume.get(where) == offset
    }
    return Selection(taken, resume, pause_until)


def unprocessed_heads(
    polled: Sequence[InboundRecord], processed: Sequence[InboundRecord]
) -> dict[Partition, int]:
    """Per partition, the lowest polled offset that is not among ``processed``."""
    done = {(r.topic, r.partition, r.offset) for r in processed}
    heads: dict[Partition, int] = {}
    for record in polled:
        if (record.topic, record.partition, record.offset) in done:
            continue
        where = (record.topic, record.partition)
        heads[where] = min(heads.get(where, record.offset), record.offset)
    return heads


def fair_take(records: Sequence[InboundRecord], max_rows_per_bot: int) -> list[InboundRecord]:
    """Keep each partition's records in order until one bot has used its share of the pass.

    The rest of that partition is put back (see :func:`select`), not reordered: under
    exactly-once the committed offset is the only record of progress, so a partition can
    only advance as a prefix. The bound keeps one hot bot from filling the whole pass, so
    every other partition's bots are answered in the same pass; behind the hot bot in its
    own partition, queries wait for it in Kafka order (see docs/architecture.md).
    Records are grouped by key without decoding; the key is the bot id by contract.
    """
    taken: list[InboundRecord] = []
    stopped: set[Partition] = set()
    per_bot: dict[tuple[str, int, bytes | None], int] = defaultdict(int)
    for record in records:
        where = (record.topic, record.partition)
        if where in stopped:
            continue
        bot = (record.topic, record.partition, record.key)
        if per_bot[bot] >= max_rows_per_bot:
            stopped.add(where)
            continue
        per_bot[bot] += 1
        taken.append(record)
    return taken


@dataclass
class BatchPlan:
    """Queries grouped by the snapshot that answers them, and the ones that failed routing."""

    groups: dict[Route, list[DecodedQuery]] = field(default_factory=dict)
    failed: list[tuple[InboundRecord, Failure]] = field(default_factory=list)

    @property
    def routes(self) -> list[Route]:
        return list(self.groups)


def plan_batch(queries: Iterable[DecodedQuery], resolve: Resolve, now_ms: int) -> BatchPlan:
    """Drop expired queries, resolve each bot's route for its stage, group by route."""
    plan = BatchPlan()
    for query in queries:
        if query.deadline_ms is not None and query.deadline_ms <= now_ms:
            late = now_ms - query.deadline_ms
            failure = query.failure(
                reasons.DEADLINE_EXCEEDED,
                reasons.PHASE_ROUTE,
                f"deadline passed {late} ms before inference (deadline {query.deadline_ms}, "
                f"now {now_ms}); not answered",
            )
            plan.failed.append((query.record, failure))
            continue
        try:
            route = resolve(query.bot_id, query.stage)
        except QueryFailed as exc:
            plan.failed.append((query.record, query.failure(exc.reason, exc.phase, str(exc))))
            continue
        plan.groups.setdefault(route, []).append(query)
    return plan
