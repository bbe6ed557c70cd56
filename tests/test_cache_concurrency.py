"""The cache under threads: single flight per key, parallel loads, prefetch, the reaper."""

from __future__ import annotations

import itertools
import threading
import time
import weakref

import pytest

from fleetserve.cache.model import LoadedModel
from fleetserve.cache.reaper import TRIM_SHARE, Reaper
from support.bots import BotFactory, BuiltBots
from support.cache import WAIT_S, WrappingLoader, make_cache, use


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=4, seed=3)


def test_concurrent_misses_of_one_key_load_once(built: BuiltBots) -> None:
    gate = threading.Event()
    loader = WrappingLoader(built, gate=gate)
    route = built.route(built.bot_ids[0])
    threads_n = 8
    start = threading.Barrier(threads_n + 1, timeout=WAIT_S)
    got: list[LoadedModel] = []

    def worker() -> None:
        start.wait()
        model = cache.acquire(route)
        got.append(model)
        cache.release(model)

    with make_cache(loader) as cache:
        threads = [threading.Thread(target=worker) for _ in range(threads_n)]
        for thread in threads:
            thread.start()
        start.wait()
        assert loader.started.wait(WAIT_S)
        time.sleep(0.05)  # let the other threads reach the in-flight load
        gate.set()
        for thread in threads:
            thread.join(WAIT_S)
        assert len(got) == threads_n
        assert loader.total == 1
        assert len({id(m.session) for m in got}) == 1
        stats = cache.stats()
        assert (stats.loads, stats.hits + stats.misses) == (1, threads_n)
        assert stats.pinned_models == 0


def test_different_keys_load_in_parallel(built: BuiltBots) -> None:
    # Each load waits at a barrier for the other: serialized loads would break it.
    loader = WrappingLoader(built, barrier=threading.Barrier(2, timeout=WAIT_S))
    a, b = built.route(built.bot_ids[0]), built.route(built.bot_ids[1])
    with make_cache(loader) as cache, cache.pinned([a, b]) as models:
        assert all(isinstance(m, LoadedModel) for m in models.values()), models
    loader = WrappingLoader(built, barrier=threading.Barrier(2, timeout=WAIT_S))
    with make_cache(loader) as cache:
        results: list[LoadedModel] = []
        threads = [
            threading.Thread(target=lambda r=r: results.append(use(cache, r))) for r in (a, b)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S)
        assert len(results) == 2
        assert cache.stats().loads_failed == 0


def test_a_slow_load_does_not_block_hits_on_other_keys(built: BuiltBots) -> None:
    gate = threading.Event()
    a, b = built.route(built.bot_ids[0]), built.route(built.bot_ids[1])
    loader = WrappingLoader(built)
    with make_cache(loader) as cache:
        use(cache, a)
        loader.gate = gate  # from now on loads wait for the gate
        slow = threading.Thread(target=use, args=(cache, b))
        slow.start()
        assert loader.started.wait(WAIT_S)
        assert use(cache, a).route == a, "a hit while b is loading"
        assert cache.stats().hits == 1
        gate.set()
        slow.join(WAIT_S)
        assert cache.stats().loads == 2


def test_prefetch_starts_loads_without_waiting(built: BuiltBots) -> None:
    gate = threading.Event()
    a, b = built.route(built.bot_ids[0]), built.route(built.bot_ids[1])
    loader = WrappingLoader(built, gate=gate)
    with make_cache(loader) as cache:
        started = time.perf_counter()
        cache.prefetch([a, b, a])
        assert time.perf_counter() - started < 1.0, "prefetch must not wait for loads"
        assert loader.started.wait(WAIT_S)
        gate.set()
        use(cache, a)  # joins the prefetch in flight or hits its result
        use(cache, b)
        assert loader.total == 2
        cache.prefetch([a, b])  # resident: nothing to do
        assert loader.total == 2


def test_evicted_sessions_are_freed_on_the_reaper_thread(built: BuiltBots) -> None:
    a, b = built.route(built.bot_ids[0]), built.route(built.bot_ids[1])
    freed = threading.Event()
    freed_on: list[str] = []

    def on_free() -> None:
        freed_on.append(threading.current_thread().name)
        freed.set()

    with make_cache(WrappingLoader(built), budget_models=1) as cache:
        weakref.finalize(use(cache, a).session, on_free)  # the test keeps no reference
        use(cache, b)  # evicts a
        assert freed.wait(WAIT_S)
        assert freed_on == ["fleetserve-cache-reaper"]


def test_reaper_trims_the_heap_after_frees_at_a_bounded_rate() -> None:
    trims: list[float] = []
    reaper = Reaper(trim=lambda: trims.append(time.monotonic()), trim_interval_s=0.05)
    try:
        reaper.drop([])  # nothing to free: no thread, no trim
        assert not trims
        for _ in range(20):
            reaper.drop([object()])  # type: ignore[list-item]
        deadline = time.monotonic() + WAIT_S
        while len(trims) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # a trim owed after the burst comes one interval later
    finally:
        reaper.close()
    assert 1 <= len(trims) <= 3, trims
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(trims))


def test_a_slow_trim_spaces_out_the_next_ones() -> None:
    """A trim that took t waits t / TRIM_SHARE before the next: a fragmented heap makes
    malloc_trim slow, and every allocation in the arena waits while it runs."""
    trims: list[float] = []

    def slow_trim() -> None:
        trims.append(time.monotonic())
        time.sleep(0.02)

    reaper = Reaper(trim=slow_trim, trim_interval_s=0.005)
    try:
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            reaper.drop([object()])  # type: ignore[list-item]
            time.sleep(0.002)
    finally:
        reaper.close()
    assert trims
    gaps = [b - a for a, b in itertools.pairwise(trims)]
    assert all(gap >= 0.02 / TRIM_SHARE for gap in gaps), gaps
    assert len(trims) <= 2
