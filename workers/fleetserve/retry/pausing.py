"""Retry partitions wait paused until their head record is due: no polling, no sleeping."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from confluent_kafka import Consumer, TopicPartition

from fleetserve.core.records import Partition


class RetryPauses:
    """Which retry partitions this consumer paused, and until when (epoch ms)."""

    def __init__(self) -> None:
        self.until: dict[Partition, int] = {}

    def hold(
        self, consumer: Consumer, due_at: Mapping[Partition, int], assigned: Collection[Partition]
    ) -> None:
        """Pause each partition of ``due_at`` that is still ours until its head is due.

        The caller has already moved the partition's position back to that head.
        """
        owned = [where for where in due_at if where in assigned]
        if not owned:
            return
        consumer.pause([TopicPartition(topic, partition) for topic, partition in owned])
        for where in owned:
            self.until[where] = due_at[where]

    def resume_due(self, consumer: Consumer, now_ms: int) -> None:
        due = [where for where, due_ms in self.until.items() if due_ms <= now_ms]
        if due:
            consumer.resume([TopicPartition(topic, partition) for topic, partition in due])
            for where in due:
                del self.until[where]

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Revoked partitions: their next owner starts unpaused from the committed offset."""
        for where in partitions:
            self.until.pop(where, None)
