"""A model's measured footprint: heap growth, calibration, clamping, the estimate, real sessions."""

from __future__ import annotations

import threading

import pytest

from fleetserve.cache.footprint import (
    MIN_SAMPLES,
    PROBE_SHARE,
    PYTHON_BYTES,
    FootprintMeter,
    prior_estimate,
)
from fleetserve.cache.heap import glibc_heap_probe
from fleetserve.cache.loader import SnapshotLoader
from support.bots import BotFactory, BuiltBots


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=2, seed=3)


class FakeHeap:
    def __init__(self) -> None:
        self.used = 10_000_000

    def __call__(self) -> int:
        return self.used


def test_a_lone_measurement_is_the_heap_growth_and_calibrates() -> None:
    heap = FakeHeap()
    meter = FootprintMeter(heap)

    def build() -> str:
        heap.used += 300_000
        return "session"

    result, footprint = meter.measure(134_000, build)
    assert result == "session"
    assert footprint.measured
    assert footprint.bytes == 300_000 + PYTHON_BYTES
    assert meter.scale == 1.0, "one sample (maybe the process's first session) is not enough"
    for _ in range(MIN_SAMPLES):
        meter.measure(134_000, build)
    assert meter.scale == pytest.approx(300_000 / prior_estimate(134_000))
    assert meter.estimate(134_000) == pytest.approx(300_000 + PYTHON_BYTES, abs=1)


def test_a_wild_measurement_is_clamped_to_the_estimate() -> None:
    heap = FakeHeap()
    meter = FootprintMeter(heap)

    def build_freeing_memory() -> None:
        heap.used -= 5_000_000  # another thread freed a large buffer meanwhile

    _, footprint = meter.measure(134_000, build_freeing_memory)
    assert footprint.measured
    assert footprint.bytes == int(0.5 * prior_estimate(134_000)) + PYTHON_BYTES


def test_overlapping_measurements_fall_back_to_the_estimate() -> None:
    heap = FakeHeap()
    meter = FootprintMeter(heap)
    inside = threading.Barrier(2, timeout=10)
    footprints = []

    def build() -> None:
        heap.used += 300_000
        inside.wait()  # both builds are in flight at once

    def load() -> None:
        footprints.append(meter.measure(134_000, build)[1])

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(footprints) == 2
    assert not any(f.measured for f in footprints)
    assert {f.bytes for f in footprints} == {meter.estimate(134_000)}


def test_without_a_heap_probe_the_estimate_is_used() -> None:
    meter = FootprintMeter(use_glibc=False)
    _, footprint = meter.measure(528_000, lambda: None)
    assert not footprint.measured
    assert footprint.bytes == int(prior_estimate(528_000)) + PYTHON_BYTES


@pytest.mark.skipif(glibc_heap_probe() is None, reason="needs glibc's mallinfo2")
def test_real_sessions_are_measured_near_the_calibrated_estimate(built: BuiltBots) -> None:
    meter = FootprintMeter()
    loader = SnapshotLoader(built.store, meter=meter)
    models = [loader(built.route(bot)) for bot in built.bot_ids for _ in range(3)]
    for model in models:
        size = built.store.read_manifest(model.route.bot_id, model.route.model_version)["model"][
            "size_bytes"
        ]
        estimate = prior_estimate(size)
        assert 0.5 * estimate <= model.footprint_bytes - PYTHON_BYTES <= 2 * estimate
    assert 0.5 < meter.scale < 2


class SlowHeap(FakeHeap):
    """A heap whose probe takes ``probe_s`` of a fake clock, as a fragmented glibc heap does."""

    def __init__(self, probe_s: float) -> None:
        super().__init__()
        self.now = 0.0
        self.probe_s = probe_s
        self.probes = 0

    def clock(self) -> float:
        return self.now

    def __call__(self) -> int:
        self.now += self.probe_s
        self.probes += 1
        return self.used


@pytest.mark.parametrize(("probe_s", "measured_share"), [(10e-6, 1.0), (0.01, 0.005)])
def test_probes_are_rationed_to_a_share_of_load_time(probe_s: float, measured_share: float) -> None:
    """Cheap probes measure every load; probes slower than the loads themselves run on at
    most PROBE_SHARE of the time loading takes, and the loads between them are estimated."""
    heap = SlowHeap(probe_s)
    meter = FootprintMeter(heap, clock=heap.clock)

    def build() -> None:
        heap.now += 0.002  # a 2 ms load
        heap.used += 250_000

    for _ in range(MIN_SAMPLES):
        assert meter.measure(140_000, build)[1].measured  # calibration is never rationed
    loads, probes_before, started = 2_000, heap.probes, heap.now
    footprints = [meter.measure(140_000, build)[1] for _ in range(loads)]
    share = sum(f.measured for f in footprints) / loads
    assert share == pytest.approx(measured_share, abs=0.002)
    probe_time = (heap.probes - probes_before) * probe_s
    assert probe_time <= PROBE_SHARE * (heap.now - started) + 2 * probe_s
    # Every load is still counted, at the calibrated estimate when it was not measured.
    assert {f.bytes for f in footprints if not f.measured} <= {meter.estimate(140_000)}
    assert meter.measured + meter.estimated == MIN_SAMPLES + loads
