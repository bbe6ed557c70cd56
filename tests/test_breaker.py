"""The crash-loop breaker's pure parts and its local file (no broker needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from fleetserve.breaker.evidence import (
    CrashEvent,
    Evidence,
    decode_evidence,
    encode_evidence,
    ledger_key,
)
from fleetserve.breaker.guard import judge
from fleetserve.breaker.inflight import InflightFile, Span, spans_of
from fleetserve.core.records import InboundRecord

NOW = 1_790_000_000_000


def event(event_id: str, first: int, last: int) -> CrashEvent:
    return CrashEvent(event_id, first, last, "w1", NOW)


def records(partition: int, *offsets: int) -> list[InboundRecord]:
    return [InboundRecord("q", partition, o, b"bot", b"{}") for o in offsets]


def test_crashes_are_counted_per_offset_once_per_event_and_resolve_past_the_last() -> None:
    evidence = Evidence("g", "q", 0, ()).with_events([event("a:1", 10, 20)])
    evidence = evidence.with_events([event("b:7", 15, 15), event("a:1", 10, 20)])  # a repeat
    assert [evidence.crashes_at(o) for o in (9, 10, 15, 20, 21)] == [0, 1, 2, 1, 0]
    assert not evidence.resolved_by(20)
    assert evidence.resolved_by(21)
    assert decode_evidence(encode_evidence(evidence)) == evidence
    assert decode_evidence(b'{"version": 9}') is None
    assert decode_evidence(b"not json") is None
    assert ledger_key("g/x", "q", 0) != ledger_key("g", "x/q", 0)


def test_judge_poisons_at_the_threshold_and_steps_through_suspects_head_first() -> None:
    evidence = {("q", 0): Evidence("g", "q", 0, (event("a:1", 10, 20), event("b:7", 15, 15)))}
    polled = [*records(1, 5, 6), *records(0, 14, 15, 16)]
    judgement = judge(polled, evidence.get, poison_after=2)
    assert list(judgement.poisoned) == [("q", 0, 15)]
    assert judgement.poisoned[("q", 0, 15)].reason == "poison"
    assert "died 2 times" in judgement.poisoned[("q", 0, 15)].message
    assert judgement.step is not None
    assert judgement.step.coordinates == ("q", 0, 14)  # the head of its partition, alone
    calm = judge(records(1, 5, 6), evidence.get, poison_after=2)
    assert calm.step is None
    assert not calm.poisoned
    past = judge(records(0, 21, 22), evidence.get, poison_after=2)
    assert past.step is None  # beyond every event: nothing to suspect


def test_spans_cover_each_partitions_offsets() -> None:
    spans = spans_of([("q", 0, 7), ("q", 1, 3), ("q", 0, 5), ("retry", 0, 9)])
    assert spans == [Span("q", 0, 5, 7), Span("q", 1, 3, 3), Span("retry", 0, 9, 9)]


def test_the_inflight_file_outlives_a_killed_process_and_clears_on_a_clean_stop(
    tmp_path: Path,
) -> None:
    """A child writes its pass and is SIGKILLed; the next run finds exactly that pass."""
    child = f"""
import os, signal
from pathlib import Path
from fleetserve.breaker.inflight import InflightFile, Span
f = InflightFile(Path({str(tmp_path)!r}), "group", "worker-1")
f.open("dead-incarnation")
f.begin([Span("q", 0, 100, 199), Span("q", 3, 7, 7)], {NOW})
f.begin([Span("q", 0, 200, 205)], {NOW + 1})
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", child], check=False, timeout=60)
    assert result.returncode == -signal.SIGKILL
    again = InflightFile(tmp_path, "group", "worker-1")
    previous = again.previous()
    assert previous is not None
    assert previous.spans == (Span("q", 0, 200, 205),)  # the shorter second write, unpadded
    assert previous.event_id == "dead-incarnation:2"
    again.open("next")
    again.clean()
    again.close()
    assert InflightFile(tmp_path, "group", "worker-1").previous() is None
    assert InflightFile(tmp_path, "group", "worker-2").previous() is None  # its own file
    path = InflightFile(tmp_path, "group", "worker-1").path
    path.write_bytes(b"{half a wri")
    assert InflightFile(tmp_path, "group", "worker-1").previous() is None
    assert os.path.dirname(path) == str(tmp_path)
