"""Workarounds for the development broker (Tansu 0.6.0), in one place and named as such.

Production is Apache Kafka; every rule below is correct there too and costs it little or
nothing, which is why it may stay in the code path rather than behind a switch. Each one
says what Tansu does (seen here) and what fleetserve does about it. docs/architecture.md
lists the broker's gaps in full.
"""

from __future__ import annotations

from typing import Final

EMPTY_FETCH_WAIT_MS: Final = 5
"""Tansu holds an empty fetch for much of ``fetch.wait.max.ms`` even when data arrives,
so librdkafka's 500 ms default added up to 500 ms to every query at low load. Apache
Kafka answers as soon as data arrives; there the lower wait only means more empty
fetches from an idle consumer. The worker's ``--fetch-wait-max-ms`` default.

The price on Tansu is its CPU: one consumer idle on 12 partitions kept it at 0.15 cores
with 5 ms, 0.03 with 100 ms and 0.01 with 500 ms, for a one-hop p50 of 2.5, 13.7 and
119.2 ms (the run before: 0.16, 0.05, 0.01 cores; 2.7, 16.0, 129.3 ms). A fetch held in
full would give half the wait: Tansu answers partway into it.
Measured by ``bench/components/kafka_settings_bench.py`` ("idle_fetch")."""

COMPACTED_ENDS_UNDER_REPORT: Final = 0.5
"""Seconds of silence a reader of a compacted topic waits after reaching the ends it was
told: Tansu's high watermark of a compacted topic under-reports (3 partitions reported
(0,1),(0,1),(0,0) while 10 records were readable). On Apache Kafka it only adds this
much to a read from the beginning (the deployments table, the crash ledger)."""


ENDS_ISOLATION: Final = "read_uncommitted"
"""The isolation a reader asks a partition's end with (:func:`kafka.offsets.log_ends`).
Tansu answers a ``read_committed`` ListOffsets with 0 while any transaction on the partition
is open (50 committed records, then an open transaction: (0, 0)), although its fetch still
stops at the right last stable offset (51). A reader that took that 0 for the end read
nothing: the retry tail read saw no steps, and a query was answered twice. Asked
``read_uncommitted``, the end is the high watermark on any broker, and a ``read_committed``
reader's end-of-partition event reaches it once every transaction open when the read began
is decided: on Apache Kafka too that is what "read to the end as of now" means."""


def reached_end(eof_offset: int, end_at_start: int) -> bool:
    """A partition is read to its end at an end-of-partition event at or past its end
    when the read started.

    Only the event counts, never a record's offset against the watermark: Tansu
    under-reports a partition's end when its last batch holds several records, and on any
    broker a transactional partition ends in a commit marker no record offset reaches.
    """
    return eof_offset >= end_at_start


def safe_start(offset: int, reported_end: int) -> int:
    """Where to start reading for one record: never past the reported end.

    Tansu answers a fetch past its (possibly under-reported) end with nothing at all, not
    even an end event; starting at most there and reading forward finds the record.
    """
    return min(offset, reported_end)


MODEL_FETCH_WAIT_MS: Final = 1
"""A model fetch always asks for a record that exists, yet Tansu's answer grows with
``fetch.wait.max.ms`` even then: on 10,000 snapshots (300 random loads) 1 ms gave p50 3.5 /
p99 8.3 ms, 5 ms 14.4 / 21.6, 100 ms 11.9 / 19.8. Apache Kafka answers as soon as it has
the data, and the model fetcher unassigns after each snapshot, so there the short wait
costs nothing (``store/kafka_fetch.py``)."""

QUIET_BEFORE_END_CHECK_S: Final = 0.2
"""Seconds with nothing fetched before a model fetcher asks whether its offset lies past
the partition's end (see :func:`past_the_end`)."""


def past_the_end(offset: int, fetched_high_watermark: int | None) -> bool:
    """Whether ``offset`` lies past a partition's end, by the last *fetch response's*
    high watermark.

    Apache Kafka answers a fetch past the end with OFFSET_OUT_OF_RANGE; Tansu answers it
    with nothing, forever, so a missing snapshot would look like a slow one. The watermark
    a fetch response carries was right where ListOffsets under-reported (seen here); an
    unknown one (negative, None) decides nothing.
    """
    return fetched_high_watermark is not None and 0 <= fetched_high_watermark < offset
