"""Run a replay: fence other replays, read the ledger, then send what may go, recorded.

Order matters. The transactional producer starts first (``init_transactions``): that
fences any other replay of the same dead-letter topic (same ``transactional.id``) and
ends its open transaction, so the ledger read next holds everything that replay
committed, and it can commit nothing more. Each chunk of replayed queries commits in one
transaction with its ledger records: a crash, Ctrl-C or fencing mid-run leaves every
replay recorded and every record replayed, and a rerun continues where it stopped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Set
from contextlib import closing
from dataclasses import dataclass, field

from fleetserve.config.settings import KafkaSettings
from fleetserve.core.clock import now_ms
from fleetserve.deadletters.operators.filters import DeadLetterFilter
from fleetserve.deadletters.operators.ledger import ledger_value, read_ledger
from fleetserve.deadletters.operators.pacing import Pacer
from fleetserve.deadletters.operators.read import read_dead_letters
from fleetserve.deadletters.operators.records import DeadLetterRecord
from fleetserve.deadletters.operators.replay_plan import (
    ReplayEvent,
    ReplayOptions,
    Verdict,
    build_replay,
    decide,
    needs_original,
    with_original,
)
from fleetserve.deadletters.operators.sink import DryRunSink, ReplayTopics, Sink, TransactionalSink
from fleetserve.kafka.scan import read_one


@dataclass(frozen=True, slots=True)
class RunLimits:
    """``dry_run``: decide and report, send nothing. ``rate``: replays per second (None or 0:
    unlimited). ``limit``: stop after this many replays."""

    dry_run: bool = False
    rate: float | None = None
    limit: int | None = None


@dataclass
class ReplaySummary:
    counts: Counter[Verdict] = field(default_factory=Counter)
    not_selected: int = 0
    stopped_at_limit: bool = False


Report = Callable[[ReplayEvent], None]


def replay_dead_letters(
    kafka: KafkaSettings,
    topics: ReplayTopics,
    dl_filter: DeadLetterFilter,
    options: ReplayOptions,
    limits: RunLimits,
    report: Report,
    summary: ReplaySummary | None = None,
) -> ReplaySummary:
    """Replay the selected dead letters; ``report`` hears each verdict (a replay only once
    its transaction committed). Raises FatalError when a chunk could not be committed;
    ``summary``, when given, then still holds what happened before."""
    summary = summary if summary is not None else ReplaySummary()

    def emit(event: ReplayEvent) -> None:
        summary.counts[event.verdict] += 1
        report(event)

    sink: Sink = DryRunSink(emit) if limits.dry_run else TransactionalSink(kafka, topics, emit)
    try:
        sink.start()
        replayed = read_ledger(kafka, topics.ledger)
        _Run(kafka, topics, dl_filter, options, limits, sink, emit, summary).go(replayed)
        sink.finish()
    finally:
        sink.close()
    return summary


@dataclass
class _Run:
    kafka: KafkaSettings
    topics: ReplayTopics
    dl_filter: DeadLetterFilter
    options: ReplayOptions
    limits: RunLimits
    sink: Sink
    emit: Callable[[ReplayEvent], None]
    summary: ReplaySummary

    def go(self, replayed: Set[str]) -> None:
        seen = set(replayed)  # plus this run's: a duplicate later in the topic is skipped
        sent_refs: set[str] = set()
        pacer = Pacer(None if self.limits.dry_run else self.limits.rate)
        queued = 0
        items = read_dead_letters(
            self.kafka, self.topics.dead_letters, since_ms=self.dl_filter.since_ms
        )
        with closing(items):
            for item in items:
                self.sink.tick()
                decision = decide(item, self.dl_filter, self.options, seen, sent_refs)
                if decision is None:
                    self.summary.not_selected += 1
                elif decision.verdict is not Verdict.REPLAY:
                    self.emit(ReplayEvent(decision.verdict, item, decision.why))
                elif self.limits.limit is not None and queued >= self.limits.limit:
                    self.summary.stopped_at_limit = True
                    return
                else:
                    assert decision.ledger_key is not None
                    # Commit before a long pause rather than hold a transaction open in it.
                    self.sink.tick(pacer.delay())
                    pacer.wait()
                    if self._send(item, decision.why, decision.ledger_key):
                        seen.add(decision.ledger_key)
                        sent_refs.add(item.ref)
                        queued += 1

    def _send(self, item: DeadLetterRecord, why: str, key: str) -> bool:
        """Send the replay of ``item``; False when it cannot be sent (reported as refused)."""
        assert item.dead_letter is not None
        dead_letter = item.dead_letter
        if needs_original(dead_letter):
            source = dead_letter["source"]
            found = read_one(self.kafka, source["topic"], source["partition"], source["offset"])
            if found is None:
                where = f"{source['topic']}[{source['partition']}]@{source['offset']}"
                self.emit(
                    ReplayEvent(
                        Verdict.REFUSED,
                        item,
                        f"its original was left out ({dead_letter['original']['omitted']}) "
                        f"and {where} no longer holds it",
                    )
                )
                return False
            dead_letter = with_original(dead_letter, found)
            why = f"{why}, original fetched from {source['topic']}"
        now = now_ms()
        outgoing = build_replay(dead_letter, replay_of=item.ref, options=self.options, now_ms=now)
        record = ledger_value(dead_letter, outgoing, now_ms=now)
        self.sink.send(ReplayEvent(Verdict.REPLAY, item, why, outgoing), key, record)
        return True
