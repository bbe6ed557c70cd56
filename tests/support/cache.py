"""A counted wrapper around the real snapshot loader, and small helpers for cache tests."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from fleetserve.cache.loader import SnapshotLoader
from fleetserve.cache.model import CacheKey, LoadedModel
from fleetserve.cache.model_cache import ModelCache
from fleetserve.core.route import Route
from support.bots import BuiltBots

FOOTPRINT = 100_000


WAIT_S = 10.0  # generous bound for threads that should meet; never reached when correct


class WrappingLoader:
    """The real loader, counted, optionally held at a barrier or event, fixed footprint."""

    def __init__(
        self,
        built: BuiltBots,
        *,
        footprint: int | None = FOOTPRINT,
        barrier: threading.Barrier | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        self.inner = SnapshotLoader(built.store)
        self.footprint = footprint
        self.barrier = barrier
        self.gate = gate
        self.calls: Counter[CacheKey] = Counter()
        self.started = threading.Event()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def __call__(self, route: Route) -> LoadedModel:
        with self._lock:
            self.calls[route.cache_key] += 1
        self.started.set()
        if self.barrier is not None:
            self.barrier.wait()
        if self.gate is not None:
            assert self.gate.wait(WAIT_S)
        model = self.inner(route)
        if self.footprint is not None:
            model = replace(model, footprint_bytes=self.footprint)
        return model


@contextmanager
def make_cache(
    loader: WrappingLoader, budget_models: float = 100, **options: object
) -> Iterator[ModelCache]:
    cache = ModelCache(loader, budget_bytes=int(budget_models * FOOTPRINT), **options)  # type: ignore[arg-type]
    try:
        yield cache
    finally:
        cache.close()


def use(cache: ModelCache, route: Route) -> LoadedModel:
    model = cache.acquire(route)
    cache.release(model)
    return model


def keys(cache: ModelCache, built: BuiltBots) -> set[str]:
    """Bots of ``built`` whose first version is resident (looking is not a use)."""
    return {bot for bot in built.bot_ids if built.route(bot) in cache}
