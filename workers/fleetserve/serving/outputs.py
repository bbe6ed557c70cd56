"""What one pass produces: its outputs (each tied to the record it answers) and its offsets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from fleetserve.core.records import Headers, InboundRecord, Partition
from fleetserve.retry.dedupe import Step
from fleetserve.stats.facts import OutcomeFacts

OutputKind = Literal["reply", "dead_letter", "retry", "stats"]


class Output(NamedTuple):
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


def track_offsets(result: PassResult, records: Sequence[InboundRecord]) -> None:
    for record in records:
        where = (record.topic, record.partition)
        result.first_offsets.setdefault(where, record.offset)
        result.next_offsets[where] = max(result.next_offsets.get(where, 0), record.offset + 1)
