"""Each retry step is processed once per group, even when its record appears twice.

A retry step is one try of one query: (the query's first topic, partition, offset, and
the attempt number). Two records of the same step exist when a pass that wrote one was
not committed but its record is still read: ``--delivery at-least-once`` repeats a
crashed pass, and the development broker (Tansu) hands aborted transactional records to
``read_committed`` readers. Apache Kafka in exactly-once mode never shows the copy; the
check then only costs a set lookup per retry record.

A worker remembers the steps it committed per retry partition, and when it is assigned a
retry partition it first reads back what the group committed just before, so a copy is
caught across restarts and rebalances too.

A step is also skipped when the *next* step of the same query is already visible in the
retry topic: a pass decided "retry" for it and wrote that record, but did not commit, and
the re-run would decide afresh (the model may load now) while the record it left is still
answered. Only a broker that shows an uncommitted pass's records (Tansu; any broker under
at-least-once) makes the record visible, and then the re-run adopts the decision instead
of doubling it. Apache Kafka in exactly-once mode hides the record, and the re-run decides.
The visible steps are read from the tail of every retry partition when partitions are
assigned and after an aborted pass: the two moments a query's step can be read again.
The read waits until every transaction open when it began is decided (a SIGKILLed pass's
stays open until its worker restarts and fences it), because only then is it known whether
the broker will hand that pass's retry record to the group.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, TopicPartition

from fleetserve.core.outcome import Origin
from fleetserve.core.records import Partition
from fleetserve.kafka import devbroker
from fleetserve.kafka.offsets import watermarks
from fleetserve.kafka.records import inbound_record
from fleetserve.retry.state import retried_origin

logger = logging.getLogger(__name__)

Step = tuple[str, int, int, int]
READ_BACK: int = 10_000  # records of a retry partition read back on assignment
READ_BACK_TIMEOUT_S = 10.0
TAIL: int = 10_000  # records at the end of each retry partition whose steps are "visible"


def next_step(step: Step) -> Step:
    topic, partition, offset, attempt = step
    return (topic, partition, offset, attempt + 1)


def step_of(origin: Origin) -> Step:
    return (origin.topic, origin.partition, origin.offset, origin.attempt)


class RetrySteps:
    """The retry steps this group committed lately, per retry partition (bounded)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._done: dict[Partition, OrderedDict[Step, None]] = {}
        self.visible: frozenset[Step] = frozenset()
        """Steps whose record is in the retry topic's tail, as last read."""

    def superseded(self, step: Step) -> bool:
        """A later try of this step's query is already in the retry topic."""
        return next_step(step) in self.visible

    def read_tails(self, reader: Consumer, end_reader: Consumer, retry_topic: str) -> int:
        """Learn the steps now visible at the end of every partition of the retry topic."""
        self.visible = frozenset(visible_steps(reader, end_reader, retry_topic))
        return len(self.visible)

    def done(self, where: Partition, step: Step) -> bool:
        return step in self._done.get(where, ())

    def remember(self, where: Partition, steps: Iterable[Step]) -> None:
        done = self._done.setdefault(where, OrderedDict())
        for step in steps:
            done[step] = None
        while len(done) > self.limit:
            done.popitem(last=False)

    def forget(self, partitions: Iterable[Partition]) -> None:
        for where in partitions:
            self._done.pop(where, None)

    def read_back(self, reader: Consumer, group_consumer: Consumer, where: Partition) -> int:
        """Learn the steps committed just before this partition's committed offset."""
        topic, partition = where
        (committed,) = group_consumer.committed([TopicPartition(topic, partition)], timeout=5)
        end = committed.offset
        if end in (OFFSET_INVALID, None) or end <= 0:
            return 0
        start = max(0, end - READ_BACK)
        reader.assign([TopicPartition(topic, partition, start)])
        steps = []
        deadline = time.monotonic() + READ_BACK_TIMEOUT_S
        position = start
        while position < end and time.monotonic() < deadline:
            for message in reader.consume(500, 0.2):
                if message.error() is not None:
                    continue
                record = inbound_record(message)
                position = max(position, record.offset + 1)
                origin = retried_origin(record) if record.offset < end else None
                if origin is not None:
                    steps.append(step_of(origin))
        reader.unassign()
        if position < end:
            logger.warning("read back %s[%d] only to %d of %d", topic, partition, position, end)
        self.remember(where, steps)
        return len(steps)


def visible_steps(
    reader: Consumer, end_reader: Consumer, topic: str, timeout_s: float = READ_BACK_TIMEOUT_S
) -> set[Step]:
    """The steps of the last ``TAIL`` records of each partition of ``topic``, as the group
    will read them.

    ``reader`` reads as the group does (``read_committed``); ``end_reader`` tells where each log
    ends now, whatever is still open (``devbroker.ENDS_ISOLATION``). A partition is done
    when the reader's end-of-partition event reaches that end, so a transaction still open
    at the start is waited for: Apache Kafka then hides its records if it was aborted, and
    Tansu shows them, and either way the reader has seen what the group will see.
    """
    marks = watermarks(end_reader, topic, timeout_s)
    ends = {p: high for p, (low, high) in marks.items() if high > low}
    if not ends:
        return set()
    reader.assign(
        [TopicPartition(topic, p, max(marks[p][0], high - TAIL)) for p, high in ends.items()]
    )
    steps: set[Step] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while ends and time.monotonic() < deadline:
            for message in reader.consume(500, 0.2):
                error = message.error()
                if error is not None:
                    # Only the end event counts: a transactional partition ends in a marker.
                    eof = error.code() == KafkaError._PARTITION_EOF
                    partition = message.partition() or 0
                    if eof and devbroker.reached_end(message.offset() or 0, ends.get(partition, 0)):
                        ends.pop(partition, None)
                    continue
                origin = retried_origin(inbound_record(message))
                if origin is not None:
                    steps.add(step_of(origin))
    finally:
        reader.unassign()
    if ends:
        logger.warning("read the tail of %s only partly (behind: %s)", topic, sorted(ends))
    return steps
