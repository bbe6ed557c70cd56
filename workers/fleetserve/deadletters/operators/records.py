"""A record of the dead-letter topic as plain data: decoded, or why it could not be."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetserve.contracts.codec import decode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.records import InboundRecord
from fleetserve.errors import ContractError


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One record of the dead-letter topic; ``dead_letter`` is None when it is unreadable."""

    record: InboundRecord
    dead_letter: dict[str, Any] | None
    problem: str | None = None

    @property
    def id(self) -> str:
        """``<partition>:<offset>`` on the dead-letter topic, what ``dlq show`` takes."""
        return f"{self.record.partition}:{self.record.offset}"

    @property
    def ref(self) -> str:
        """``<topic>/<partition>/<offset>``: the dead letter named across topics."""
        return f"{self.record.topic}/{self.record.partition}/{self.record.offset}"


def decode_dead_letter(record: InboundRecord) -> DeadLetterRecord:
    """Decode and validate a dead letter v1; a bad record is described, never raised."""
    if record.value is None:
        return DeadLetterRecord(record, None, "no value (a tombstone)")
    try:
        return DeadLetterRecord(record, decode(MessageKind.DEAD_LETTER, record.value))
    except ContractError as exc:
        return DeadLetterRecord(record, None, f"not a dead letter v1: {exc}")


def parse_id(text: str) -> tuple[int, int]:
    """``<partition>:<offset>`` as two non-negative ints; ValueError otherwise."""
    partition, sep, offset = text.strip().partition(":")
    if sep and partition.isdigit() and offset.isdigit():
        return int(partition), int(offset)
    raise ValueError(f"{text!r} is not a dead-letter id; ids look like 2:1041 (partition:offset)")
