"""Which retry records are due: the rest wait, with their partition paused, never spinning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetserve.core.records import InboundRecord, Partition
from fleetserve.kafka.headers import header_int
from fleetserve.retry.state import NOT_BEFORE


@dataclass
class DueSplit:
    due: list[InboundRecord] = field(default_factory=list)
    held: dict[Partition, tuple[int, int]] = field(default_factory=dict)
    """Per retry partition: the first offset not yet due, and when it is due (epoch ms)."""


def split_due(records: Sequence[InboundRecord], retry_topic: str, now_ms: int) -> DueSplit:
    """Records from ``retry_topic`` up to the first one not yet due, per partition.

    A retry partition only advances as a prefix (its offset is the record of progress), so
    everything behind a record that is not due waits with it. Retries are written in
    failure order and delays only double, so the head is almost always the earliest due;
    a record behind a longer delay waits at most ``retry_max_ms`` more than it asked.
    """
    split = DueSplit()
    for record in records:
        where = (record.topic, record.partition)
        if record.topic != retry_topic:
            split.due.append(record)
        elif where not in split.held:
            due_ms = header_int(record.headers, NOT_BEFORE)
            if due_ms > now_ms:
                split.held[where] = (record.offset, due_ms)
            else:
                split.due.append(record)
    return split
