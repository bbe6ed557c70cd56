"""The model cache with real ONNX snapshots: LRU by bytes and count, pins, retire, single-flight
loads, parallel loads, remembered failures, metrics.

The loaders below wrap the real SnapshotLoader: they count calls, can hold a load at a
barrier or an event, and can fix the footprint so budgets are exact.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from fleetserve.cache.loader import SnapshotLoader
from fleetserve.cache.lru import LruLedger
from fleetserve.cache.metrics import CacheMetrics
from fleetserve.cache.model import LoadedModel
from fleetserve.cache.model_cache import ModelCache
from fleetserve.core.route import Route
from fleetserve.errors import QueryFailed
from support.bots import BotFactory, BuiltBots
from support.cache import FOOTPRINT, WrappingLoader, keys, make_cache, use


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=4, seed=3)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


# -- hit, miss, eviction -------------------------------------------------------------------


def test_miss_then_hit_shares_one_session(built: BuiltBots) -> None:
    loader = WrappingLoader(built)
    with make_cache(loader) as cache:
        route = built.route(built.bot_ids[0])
        first = use(cache, route)
        second = use(cache, route)
        assert second.session is first.session
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.loads, loader.total) == (1, 1, 1, 1)
        assert (stats.resident_models, stats.resident_bytes) == (1, FOOTPRINT)
        assert stats.pinned_models == 0


def test_evicts_least_recently_used_by_bytes(built: BuiltBots) -> None:
    a, b, c, _ = (built.route(bot) for bot in built.bot_ids)
    loader = WrappingLoader(built)
    with make_cache(loader, budget_models=2.5) as cache:
        use(cache, a)
        use(cache, b)
        use(cache, a)  # a is now more recent than b
        use(cache, c)
        assert keys(cache, built) == {a.bot_id, c.bot_id}
        stats = cache.stats()
        assert stats.evictions == 1
        assert stats.resident_bytes == 2 * FOOTPRINT <= 2.5 * FOOTPRINT
        use(cache, b)  # b was evicted: a miss that loads again
        assert loader.calls[b.cache_key] == 2


def test_real_footprints_are_what_the_budget_counts(built: BuiltBots) -> None:
    loader = WrappingLoader(built, footprint=None)
    with make_cache(loader, budget_models=10_000) as cache:
        models = [use(cache, built.route(bot)) for bot in built.bot_ids]
        assert cache.stats().resident_bytes == sum(m.footprint_bytes for m in models)
        one = models[0].footprint_bytes
    with make_cache(loader, budget_models=(1.5 * one) / FOOTPRINT) as cache:
        for bot in built.bot_ids:
            use(cache, built.route(bot))
        assert cache.stats().resident_models == 1
        assert cache.stats().evictions == len(built.bot_ids) - 1


def test_evicts_by_count(built: BuiltBots) -> None:
    routes = [built.route(bot) for bot in built.bot_ids]
    with make_cache(WrappingLoader(built), max_models=2) as cache:
        for route in routes:
            use(cache, route)
        assert keys(cache, built) == {routes[2].bot_id, routes[3].bot_id}
        assert cache.stats().evictions == 2


def test_a_model_larger_than_the_budget_is_served_then_dropped(built: BuiltBots) -> None:
    route = built.route(built.bot_ids[0])
    with make_cache(WrappingLoader(built), budget_models=0.5) as cache:
        model = cache.acquire(route)
        assert model.route == route
        cache.release(model)
        assert cache.stats().resident_models == 0


def test_ledger_rules_without_threads(built: BuiltBots) -> None:
    model = SnapshotLoader(built.store)(built.route(built.bot_ids[0]))
    a, b, c = (
        replace(model, route=replace(model.route, bot_id=name), footprint_bytes=10)
        for name in ("a", "b", "c")
    )
    ledger = LruLedger(budget_bytes=20)
    ledger.insert(a, pins=1)
    ledger.insert(b, pins=0)
    ledger.insert(c, pins=0)
    assert ledger.pinned == 1
    assert ledger.evict() == [b], "a is older but pinned"
    assert ledger.pin(c.route.cache_key) is c
    ledger.insert(b, pins=0)
    assert ledger.evict() == [b], "the only unpinned entry goes; pinned a and c stay"
    ledger.insert(b, pins=1)
    assert ledger.evict() == []
    assert ledger.over_budget(), "everything pinned: over budget until a release"
    assert ledger.unpin(b.route.cache_key) == []
    assert ledger.evict() == [b]
    assert ledger.retire("a") == ([], 1)
    assert ledger.unpin(a.route.cache_key) == [a], "retired: leaves on its last release"
    assert ledger.unpin(c.route.cache_key) == []
    assert (len(ledger), ledger.pinned, ledger.resident_bytes) == (1, 0, 10)
    with pytest.raises(KeyError):
        ledger.unpin(c.route.cache_key)


# -- pins ----------------------------------------------------------------------------------


def test_pinned_models_are_never_evicted_and_go_when_released(
    built: BuiltBots, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, c, _ = (built.route(bot) for bot in built.bot_ids)
    caplog.set_level(logging.WARNING, logger="fleetserve.cache")
    with make_cache(WrappingLoader(built), budget_models=1) as cache:
        held_a = cache.acquire(a)
        held_b = cache.acquire(b)
        held_c = cache.acquire(c)
        stats = cache.stats()
        assert (stats.resident_models, stats.pinned_models, stats.evictions) == (3, 3, 0)
        assert stats.resident_bytes == 3 * FOOTPRINT > FOOTPRINT, "over budget while pinned"
        warnings = [r for r in caplog.records if "over budget" in r.getMessage()]
        assert len(warnings) == 1, "warned once for the episode, not per load"
        assert b.bot_id in warnings[0].getMessage()

        cache.release(held_a)  # evictable now, and the cache is over budget
        assert keys(cache, built) == {b.bot_id, c.bot_id}
        cache.release(held_b)
        assert keys(cache, built) == {c.bot_id}
        cache.release(held_c)
        stats = cache.stats()
        assert (stats.resident_models, stats.evictions, stats.pinned_models) == (1, 2, 0)
        assert held_c.session is use(cache, c).session


def test_pinned_context_acquires_distinct_routes_and_releases_all(built: BuiltBots) -> None:
    a, b, _, _ = (built.route(bot) for bot in built.bot_ids)
    missing = Route("no-such-bot", "real", "0123456789abcdef", "cd" * 32)
    loader = WrappingLoader(built)
    with make_cache(loader) as cache:
        with cache.pinned([a, b, a, missing]) as models:
            assert set(models) == {a, b, missing}
            model_a, model_b = models[a], models[b]
            assert isinstance(model_a, LoadedModel)
            assert isinstance(model_b, LoadedModel)
            assert model_a.route == a
            assert model_b.route == b
            failure = models[missing]
            assert isinstance(failure, QueryFailed)
            assert failure.reason == "model_missing"
            assert cache.stats().pinned_models == 2
        assert cache.stats().pinned_models == 0
        assert loader.calls[a.cache_key] == 1


def test_stages_on_one_snapshot_share_the_session_with_their_own_route(
    built: BuiltBots,
) -> None:
    real = built.route(built.bot_ids[0])
    beta = replace(real, stage="beta", include_query_text=False)
    loader = WrappingLoader(built)
    with make_cache(loader) as cache:
        with cache.pinned([real, beta]) as models:
            assert loader.total == 1
            got_real, got_beta = models[real], models[beta]
            assert isinstance(got_real, LoadedModel)
            assert isinstance(got_beta, LoadedModel)
            assert got_real.session is got_beta.session
            assert (got_real.route, got_beta.route) == (real, beta)
        assert cache.stats().resident_models == 1


# -- retire (live swap) --------------------------------------------------------------------


def test_retire_drops_old_versions_and_pinned_ones_on_release(built: BuiltBots) -> None:
    bot, other = built.bot_ids[0], built.bot_ids[1]
    old = built.route(bot)
    new = built.route(bot, built.build(bot, seed=1))
    assert new.model_version != old.model_version
    with make_cache(WrappingLoader(built)) as cache:
        in_batch = cache.acquire(old)  # a batch is still answering with the old version
        use(cache, new)
        use(cache, built.route(other))

        cache.retire(bot, keep=[new])
        assert old in cache, "still pinned: stays until released"
        assert cache.stats().retired == 0
        cache.release(in_batch)
        assert old not in cache
        assert new in cache
        assert built.route(other) in cache, "other bots are untouched"
        stats = cache.stats()
        assert (stats.retired, stats.evictions, stats.resident_models) == (1, 0, 2)

        cache.retire(bot)  # undeployed: nothing of it stays
        assert new not in cache
        assert cache.stats().retired == 2


def test_a_swap_on_one_stage_keeps_the_model_another_stage_serves(built: BuiltBots) -> None:
    bot = built.bot_ids[0]
    beta = replace(built.route(bot), stage="beta")
    old_real = built.route(bot, built.build(bot, seed=1))
    new_real = built.route(bot, built.build(bot, seed=2))
    assert len({beta.model_version, old_real.model_version, new_real.model_version}) == 3
    with make_cache(WrappingLoader(built)) as cache:
        for route in (beta, old_real, new_real):
            use(cache, route)
        cache.retire(bot, keep=[beta, new_real])  # real moved to a new version; beta did not
        assert beta in cache
        assert new_real in cache
        assert old_real not in cache
        assert cache.stats().retired == 1


# -- concurrency ---------------------------------------------------------------------------


# -- failures ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_loads_are_remembered_for_the_ttl(built: BuiltBots) -> None:
    missing = Route(built.bot_ids[0], "real", "0123456789abcdef", "ef" * 32)
    clock = FakeClock()
    loader = WrappingLoader(built)
    with make_cache(loader, failure_ttl_s=5.0, clock=clock) as cache:
        with pytest.raises(QueryFailed) as first:
            cache.acquire(missing)
        clock.now += 4.9
        with pytest.raises(QueryFailed) as again:
            cache.acquire(missing)
        assert loader.total == 1, "not re-read within the TTL"
        assert again.value is not first.value
        assert (again.value.reason, str(again.value), again.value.phase) == (
            first.value.reason,
            str(first.value),
            "load",
        )
        clock.now += 0.2
        with pytest.raises(QueryFailed):
            cache.acquire(missing)
        assert loader.total == 2, "read again once the TTL passed"
        assert cache.stats().loads_failed == 2

        cache.retire(missing.bot_id)  # a new deployment of the bot: try again at once
        with pytest.raises(QueryFailed):
            cache.acquire(missing)
        assert loader.total == 3


def test_a_loader_raising_anything_else_is_model_load_failed(built: BuiltBots) -> None:
    def broken(route: Route) -> LoadedModel:
        raise MemoryError(f"cannot load {route.bot_id}")

    route = built.route(built.bot_ids[0])
    cache = ModelCache(broken, budget_bytes=FOOTPRINT)
    try:
        with pytest.raises(QueryFailed) as caught:
            cache.acquire(route)
        assert caught.value.reason == "model_load_failed"
        assert route.bot_id in str(caught.value)
        assert route.model_version in str(caught.value)
    finally:
        cache.close()


def test_closed_cache_refuses_work(built: BuiltBots) -> None:
    cache = ModelCache(WrappingLoader(built), budget_bytes=FOOTPRINT)
    use(cache, built.route(built.bot_ids[0]))
    cache.close()
    assert cache.stats().resident_models == 0
    with pytest.raises(RuntimeError, match="closed"):
        cache.acquire(built.route(built.bot_ids[0]))


# -- metrics -------------------------------------------------------------------------------


def test_metrics_follow_the_cache(built: BuiltBots, registry: CollectorRegistry) -> None:
    a, b = built.route(built.bot_ids[0]), built.route(built.bot_ids[1])
    missing = Route("no-such-bot", "real", "0123456789abcdef", "cd" * 32)
    metrics = CacheMetrics(registry)
    with make_cache(WrappingLoader(built), budget_models=1, metrics=metrics) as cache:
        use(cache, a)
        use(cache, a)
        use(cache, b)
        with pytest.raises(QueryFailed):
            cache.acquire(missing)

        def sample(name: str, **labels: str) -> float | None:
            return registry.get_sample_value(name, labels)

        assert sample("fleetserve_cache_hits_total") == 1
        assert sample("fleetserve_cache_misses_total") == 3
        assert sample("fleetserve_cache_evictions_total") == 1
        assert sample("fleetserve_cache_load_failures_total", reason="model_missing") == 1
        assert sample("fleetserve_cache_load_seconds_count") == 2
        load_sum = sample("fleetserve_cache_load_seconds_sum")
        assert load_sum is not None
        assert 0 < load_sum < 5
        assert sample("fleetserve_cache_resident_bytes") == FOOTPRINT
        assert sample("fleetserve_cache_resident_models") == 1
