"""Per pass: which records are poison, and whether to go one record at a time. Pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fleetserve.breaker.evidence import Evidence
from fleetserve.core.outcome import Verdict
from fleetserve.core.records import Coordinates, InboundRecord, Partition
from fleetserve.deadletters import reasons

EvidenceOf = Callable[[Partition], "Evidence | None"]


@dataclass(frozen=True)
class Judgement:
    poisoned: dict[Coordinates, Verdict] = field(default_factory=dict)
    """Records that killed workers ``poison_after`` times: dead letters, never processed."""
    step: InboundRecord | None = None
    """When set, the pass processes only this record: its partition has crash evidence."""


def judge(
    records: Sequence[InboundRecord], evidence_of: EvidenceOf, poison_after: int
) -> Judgement:
    """Poison verdicts, and the one record to process alone when crashes are unresolved.

    A record counted in a crash but not yet ``poison_after`` times is processed alone,
    head of its partition first, with its own in-flight entry: if it kills this worker
    too, the next crash names that record and nothing else.
    """
    poisoned: dict[Coordinates, Verdict] = {}
    suspect: Partition | None = None
    heads: dict[Partition, InboundRecord] = {}
    for record in records:
        where = (record.topic, record.partition)
        if where not in heads or record.offset < heads[where].offset:
            heads[where] = record
        evidence = evidence_of(where)
        if evidence is None:
            continue
        crashes = evidence.crashes_at(record.offset)
        if crashes >= poison_after:
            poisoned[record.coordinates] = _poison(evidence, record, crashes)
        elif crashes and suspect is None:
            suspect = where
    step = heads[suspect] if suspect is not None else None
    return Judgement(poisoned, step)


def _poison(evidence: Evidence, record: InboundRecord, crashes: int) -> Verdict:
    workers = ", ".join(dict.fromkeys(evidence.workers_at(record.offset)))
    return Verdict(
        reasons.POISON,
        reasons.PHASE_DECODE,
        f"a worker died {crashes} times while this record was being processed (workers: "
        f"{workers}); it is set aside unprocessed so the records behind it are answered. "
        "Replay it once the cause is fixed",
    )
