"""The latency sweep's reading: a run that queued is named, and ratios taken where the
relay itself queued carry no verdict (they compare backlogs, not paths). Pure logic."""

from __future__ import annotations

import time
from typing import Any

from fleetserve_bench.latency import (
    Cores,
    CoresMeter,
    latency_ratios,
    relay_queued,
    why_this_long,
)
from fleetserve_bench.report import latency_rows
from fleetserve_bench.stats import p50_by_fifth, queueing


def test_a_run_whose_latency_grows_through_it_is_queueing() -> None:
    steady = [20.0 + (i % 7) for i in range(500)]
    backlog = [20.0 + 3 * i for i in range(500)]  # each query waits longer than the last
    assert not queueing(p50_by_fifth(steady))
    assert queueing(p50_by_fifth(backlog))
    # Slow but steady is not queueing, nor is a few ms of growth on a fast path.
    assert not queueing(p50_by_fifth([400.0] * 100))
    assert not queueing([2.0, 3.0, 4.0, 5.0, 9.0])
    assert p50_by_fifth([1.0, 2.0]) == []


def system(name: str, p50: float, p99: float, queued: bool) -> dict[str, Any]:
    return {"system": name, "latency_ms": {"p50": p50, "p99": p99}, "queueing": queued}


def point(rate: float, relay: float, eos: float, alo: float, relay_q: bool) -> dict[str, Any]:
    systems = [
        system("relay", relay, 4 * relay, relay_q),
        system("fleetserve exactly-once", eos, 4 * eos, eos > 200),
        system("fleetserve at-least-once", alo, 4 * alo, alo > 200),
    ]
    return {"offered_per_s": rate, "systems": systems, "ratios": latency_ratios(systems)}


def sweep(points: list[dict[str, Any]]) -> dict[str, Any]:
    served = [p for p in points if not relay_queued(p)]
    headline = points[-1]
    return {
        "rates": points,
        "offered_per_s": headline["offered_per_s"],
        "systems": headline["systems"],
        "ratios": headline["ratios"],
        "relay_queued_at_headline": relay_queued(headline),
        "comparable": served[-1] if served else None,
    }


def verdicts(rows: list[tuple[str, str, str, str]]) -> dict[str, str]:
    return {metric: verdict for metric, _m, target, verdict in rows if target != "-"}


def test_ratios_where_the_relay_queued_are_not_judged_and_the_served_rate_is() -> None:
    rows = latency_rows(
        sweep(
            [
                point(300, 17, 29, 14, False),
                point(900, 21, 94, 68, False),
                point(3600, 3000, 2400, 850, True),
            ]
        )
    )
    judged = verdicts(rows)
    at_headline = {m: v for m, v in judged.items() if "3,600 q/s" in m}
    at_served = {m: v for m, v in judged.items() if "900 q/s" in m}
    # 3,600 q/s: fleetserve "beats" a relay that is only queueing: no verdict at all.
    assert at_headline
    assert set(at_headline.values()) == {"-"}
    assert all("relay queued" in m for m in at_headline)
    # 900 q/s is the highest rate the relay served: 68 / 21 and 94 / 21 are judged, missed.
    assert at_served
    assert set(at_served.values()) == {"MISSED"}
    assert any("(queueing)" in metric for metric, *_ in rows)


def test_the_headline_is_judged_when_the_relay_served_it() -> None:
    rows = latency_rows(sweep([point(300, 17, 29, 14, False)]))
    assert set(verdicts(rows).values()) == {"met"}  # 14/17, 56/68, 29/17 within limits
    assert len(verdicts(rows)) == 3  # judged once: the served rate is the headline


def test_results_written_before_the_sweep_still_read() -> None:
    single = point(3600, 2060, 845, 465, False)
    rows = latency_rows({**single, "offered_per_s": 3600})
    assert len([r for r in rows if r[1].endswith(" ms")]) == 3


def test_each_run_says_how_busy_the_box_was() -> None:
    cores = Cores(seconds=10.0, system=0.45, broker=1.1, load_and_reader=0.37)
    assert cores.shares() == {"system": 0.45, "broker": 1.1, "load_and_reader": 0.37, "box": 1.92}
    busy = {**system("relay", 17, 68, False), "cores": cores.shares()}
    rows = latency_rows(sweep([{**point(600, 17, 60, 20, False), "systems": [busy]}]))
    assert rows[0][1] == "17.0 / 68.0 ms; box 1.92 cores, broker 1.10"


def test_the_meter_counts_this_process_and_nothing_it_was_not_given() -> None:
    meter = CoresMeter([], broker_pid=0)
    deadline = time.perf_counter() + 0.2
    while time.perf_counter() < deadline:  # this process's own work: the load generator's
        pass
    cores = meter.read()
    assert cores.system == 0  # no pids given: nothing counted
    assert cores.broker == 0  # pid 0 has no /proc entry: a gone process counts 0
    # Its own busy loop shows (however contended the machine), and one thread is one core.
    assert 0 < cores.load_and_reader <= 1.05


def test_the_run_length_note_counts_batches_per_partition_at_each_rate() -> None:
    # 200 q/s over 12 partitions is ~17 batches a second each; past 2,400 q/s the 5 ms
    # linger caps a partition at 200 a second.
    note = why_this_long(10, [200, 2_600, 10_000])
    assert "200 q/s: ~167" in note
    assert "2,600 q/s: ~2,000" in note
    assert "10,000 q/s: ~2,000" in note
    assert "up to 2,000" in note  # a hot bot's partition under Zipf, whatever the rate
