"""A model's measured footprint: heap growth, calibration, clamping, the estimate, real sessions."""

from __future__ import annotations

import threading

import pytest

from fleetserve.cache.footprint import (
    MIN_SAMPLES,
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
