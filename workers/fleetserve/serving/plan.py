"""Shape one polled batch: a fair share per bot, expired queries out, the rest by route."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fleetserve.deadletters import reasons
from fleetserve.deadletters.build import Failure
from fleetserve.errors import QueryFailed
from fleetserve.kafka.records import InboundRecord
from fleetserve.routing import Route
from fleetserve.serving.decode import DecodedQuery

Resolve = Callable[[str, str], Route]


@dataclass(frozen=True, slots=True)
class FairTake:
    """Records to process now, and where to rewind each partition whose tail waits."""

    records: list[InboundRecord]
    rewind: dict[tuple[str, int], int]


def fair_take(records: Sequence[InboundRecord], max_rows_per_bot: int) -> FairTake:
    """Keep each partition's records in order until one bot has used its share of the pass.

    The rest of that partition is put back (rewind offset), not reordered: under
    exactly-once the committed offset is the only record of progress, so a partition can
    only advance as a prefix. The bound keeps one hot bot from filling the whole pass, so
    every other partition's bots are answered in the same pass; behind the hot bot in its
    own partition, queries wait for it in Kafka order (see docs/architecture.md).
    Records are grouped by key without decoding; the key is the bot id by contract.
    """
    taken: list[InboundRecord] = []
    rewind: dict[tuple[str, int], int] = {}
    per_bot: dict[tuple[str, int, bytes | None], int] = defaultdict(int)
    for record in records:
        where = (record.topic, record.partition)
        if where in rewind:
            continue
        bot = (record.topic, record.partition, record.key)
        if per_bot[bot] >= max_rows_per_bot:
            rewind[where] = record.offset
            continue
        per_bot[bot] += 1
        taken.append(record)
    return FairTake(taken, rewind)


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
