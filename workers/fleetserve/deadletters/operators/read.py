"""The dead-letter topic, read to its end and decoded (see kafka/scan.py for how)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Final

from fleetserve.config.settings import KafkaSettings
from fleetserve.deadletters.operators.records import DeadLetterRecord, decode_dead_letter
from fleetserve.kafka.scan import read_to_end

SEEK_MARGIN_MS: Final = 5 * 60_000
"""``--since`` seeks this much earlier by record timestamp: the Kafka timestamp and
``dead_lettered_at_ms`` come from different clocks when the topic uses LogAppendTime."""


def read_dead_letters(
    kafka: KafkaSettings, topic: str, *, since_ms: int | None = None
) -> Generator[DeadLetterRecord, None, None]:
    """Every committed record of the dead-letter topic, decoded, up to its end at the start.

    ``since_ms`` skips, per partition, what was written well before that time (records
    before it may still come: callers filter on ``dead_lettered_at_ms`` themselves).
    Close the iterator (``contextlib.closing``) when stopping early.
    """
    seek_ms = None if since_ms is None else since_ms - SEEK_MARGIN_MS
    for record in read_to_end(kafka, [topic], since_ms=seek_ms):
        yield decode_dead_letter(record)
