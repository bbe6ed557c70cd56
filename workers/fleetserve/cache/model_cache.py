"""The worker's model cache: LRU by measured bytes, pins, single-flight loads per key.

Concurrency, and why it looks like this:

* One structure lock guards the ledger, the in-flight table, the failure memo and the
  counters. It is held for bookkeeping only (a dict lookup, an insert, choosing victims),
  never while a model loads, and evicted sessions are freed after it is released.
* Each cache key (bot, version, sha256) being loaded has one ``Load``: the first thread
  to miss owns it and runs the loader, later ones wait on its event. That is a lock per
  key, so two threads missing the same key load it once, and different keys load in
  parallel (onnxruntime releases the GIL while it builds a session: two threads built
  400 sessions in 0.17 s against 0.34 s for one). ray's multiplexer, by contrast, loads
  under one global lock.
* A finished load is admitted with one pin per waiter already on it, so it cannot be
  evicted between admission and the waiters' wake-up.
* ``acquire`` runs its own miss on the calling thread (no hand-off to a pool thread);
  ``pinned`` runs one miss inline and the others on the pool of ``load_threads`` threads,
  so up to ``load_threads + 1`` loads run at once; ``prefetch`` only submits to the pool.
* Evicted and retired sessions are freed on the reaper's thread (``reaper.py``), which
  keeps onnxruntime's destructor off the batch's path and the load threads' footprint
  measurements clean.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from prometheus_client import CollectorRegistry

from fleetserve.cache.inflight import Counts, Load, Pending, Step, as_failure, for_route
from fleetserve.cache.lru import LruLedger
from fleetserve.cache.metrics import CacheMetrics
from fleetserve.cache.model import CacheKey, CacheStats, LoadedModel
from fleetserve.cache.negative import FailureMemo, fresh_copy
from fleetserve.cache.reaper import Reaper
from fleetserve.core.route import Route
from fleetserve.deadletters import reasons
from fleetserve.errors import QueryFailed

logger = logging.getLogger(__name__)

Loader = Callable[[Route], LoadedModel]


class ModelCache:
    """Routes to pinned, ready models within a byte budget (and optionally a count)."""

    def __init__(
        self,
        loader: Loader,
        *,
        budget_bytes: int,
        max_models: int | None = None,
        metrics: CacheMetrics | None = None,
        load_threads: int = 2,
        failure_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if load_threads < 1:
            raise ValueError(f"load_threads must be >= 1, not {load_threads}")
        self._loader = loader
        self._ledger = LruLedger(budget_bytes, max_models)
        self._metrics = metrics if metrics is not None else CacheMetrics(CollectorRegistry())
        self._load_threads = load_threads
        self._memo = FailureMemo(failure_ttl_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._inflight: dict[CacheKey, Load] = {}
        self._counts = Counts()
        self._pool: ThreadPoolExecutor | None = None  # started by the first pool load
        self._warned_over_budget = False
        self._closed = False
        self._reaper = Reaper()  # its thread starts with the first eviction

    # -- public -----------------------------------------------------------------------

    def acquire(self, route: Route) -> LoadedModel:
        """The ready model for ``route``, pinned until :meth:`release`; raises QueryFailed."""
        step = self._begin(route)
        if isinstance(step, Pending) and step.owner:
            self._run(route, step.load)
        outcome = self._outcome(route, step)
        if isinstance(outcome, QueryFailed):
            raise outcome
        return outcome

    def release(self, model: LoadedModel) -> None:
        self.release_all([model])

    def release_all(self, models: Sequence[LoadedModel]) -> None:
        """Drop one pin of each: one lock, one eviction check and one gauge update for a
        pass's models, instead of one per model. With ``_begin_all``, pin and release took
        8.8-11.7 -> 1.8-3.3 us per route, alternating with the previous code
        (``bench/components/pin_bench.py``)."""
        if not models:
            return
        with self._lock:
            if self._closed:
                return
            gone: list[LoadedModel] = []
            for model in models:
                gone += self._ledger.unpin(model.route.cache_key)
            if gone:
                self._counts.retired += len(gone)
                self._metrics.retired.inc(len(gone))
            gone += self._settle(models[-1].route)
        self._drop(gone)

    @contextmanager
    def pinned(self, routes: Iterable[Route]) -> Iterator[dict[Route, LoadedModel | QueryFailed]]:
        """Every distinct route acquired (misses loaded concurrently), released on exit."""
        acquired: list[LoadedModel] = []
        try:
            yield self._acquire_all(list(dict.fromkeys(routes)), acquired)
        finally:
            self.release_all(acquired)

    def prefetch(self, routes: Iterable[Route]) -> None:
        """Start loading the routes that are neither resident, loading nor failed; no wait."""
        now = self._clock()
        with self._lock:
            if self._closed:
                return
            starts = [
                (route, self._start(route.cache_key, waiters=0))
                for route in dict.fromkeys(routes)
                if self._absent(route.cache_key, now)
            ]
            pool = self._pool_locked() if starts else None
        for route, load in starts:
            assert pool is not None
            self._submit(pool, route, load)

    def retire(self, bot_id: str, keep: Collection[Route] = ()) -> None:
        """``bot_id``'s deployment changed: drop its entries except those of ``keep`` (what
        some stage still routes to; a change on one stage must not evict another's model).

        Pinned entries (a batch is answering with them) go when their last pin is released;
        loads in flight for other versions are served to their waiters, then dropped.
        """
        keep_keys = frozenset(route.cache_key for route in keep)
        with self._lock:
            gone, deferred = self._ledger.retire(bot_id, keep_keys)
            for key, load in self._inflight.items():
                if key[0] == bot_id and key not in keep_keys:
                    load.retired = True
            self._memo.forget_bot(bot_id)
            self._counts.retired += len(gone)
            self._metrics.retired.inc(len(gone))
            self._publish_resident()
        logger.info(
            "bot %s retired %d cached version(s) (keeping %s); %d pinned go when released",
            bot_id,
            len(gone),
            ", ".join(sorted(route.model_version for route in keep)) or "none",
            deferred,
        )
        self._drop(gone)

    def __contains__(self, route: object) -> bool:
        """Whether ``route``'s snapshot is resident; does not count as a use."""
        if not isinstance(route, Route):
            return False
        with self._lock:
            return route.cache_key in self._ledger

    def stats(self) -> CacheStats:
        with self._lock:
            c = self._counts
            return CacheStats(
                hits=c.hits,
                misses=c.misses,
                evictions=c.evictions,
                loads_failed=c.loads_failed,
                resident_bytes=self._ledger.resident_bytes,
                resident_models=len(self._ledger),
                loads=c.loads,
                retired=c.retired,
                pinned_models=self._ledger.pinned,
            )

    def close(self) -> None:
        """Fail loads still waited on, drop every model, stop the load pool."""
        with self._lock:
            self._closed = True
            loads, self._inflight = list(self._inflight.values()), {}
            models = self._ledger.clear()
            self._publish_resident()
            pool, self._pool = self._pool, None
        for load in loads:
            load.failure = QueryFailed(
                reasons.MODEL_LOAD_FAILED, "the model cache closed", phase=reasons.PHASE_LOAD
            )
            load.done.set()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._reaper.drop(models)
        self._reaper.close()

    # -- acquiring ----------------------------------------------------------------------

    def _begin(self, route: Route) -> Step:
        (step,) = self._begin_all([route])
        return step

    def _begin_all(self, routes: Sequence[Route]) -> list[Step]:
        """Per route: pin a resident model, or recall a failure, or join or start a load.

        One lock and one update of each counter for the whole pass.
        """
        now = self._clock()
        steps: list[Step] = []
        hits = 0
        with self._lock:
            if self._closed:
                raise RuntimeError("the model cache is closed")
            for route in routes:
                key = route.cache_key
                model = self._ledger.pin(key)
                if model is not None:
                    hits += 1
                    steps.append(for_route(route, model))
                    continue
                failure = self._memo.recall(key, now)
                if failure is not None:
                    steps.append(failure)
                    continue
                load = self._inflight.get(key)
                if load is not None:
                    load.waiters += 1
                    steps.append(Pending(load, owner=False))
                else:
                    steps.append(Pending(self._start(key, waiters=1), owner=True))
            misses = len(routes) - hits
            self._counts.hits += hits
            self._counts.misses += misses
        if hits:
            self._metrics.hits.inc(hits)
        if misses:
            self._metrics.misses.inc(misses)
        return steps

    def _outcome(self, route: Route, step: Step) -> LoadedModel | QueryFailed:
        if not isinstance(step, Pending):
            return step
        step.load.done.wait()
        if step.load.model is not None:
            return for_route(route, step.load.model)
        assert step.load.failure is not None
        return fresh_copy(step.load.failure)

    def _acquire_all(
        self, routes: list[Route], acquired: list[LoadedModel]
    ) -> dict[Route, LoadedModel | QueryFailed]:
        steps = list(zip(routes, self._begin_all(routes), strict=True))
        owned = [(r, s.load) for r, s in steps if isinstance(s, Pending) and s.owner]
        if len(owned) > 1:
            with self._lock:
                pool = self._pool_locked()
            for route, load in owned[1:]:
                self._submit(pool, route, load)
        if owned:
            self._run(*owned[0])
        results: dict[Route, LoadedModel | QueryFailed] = {}
        for route, step in steps:
            outcome = self._outcome(route, step)
            if isinstance(outcome, LoadedModel):
                acquired.append(outcome)
            results[route] = outcome
        return results

    # -- loading ------------------------------------------------------------------------

    def _start(self, key: CacheKey, waiters: int) -> Load:
        load = Load(waiters)
        self._inflight[key] = load
        return load

    def _absent(self, key: CacheKey, now: float) -> bool:
        if key in self._ledger or key in self._inflight:
            return False
        failure = self._memo.recall(key, now)
        return failure is None

    def _pool_locked(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self._load_threads, thread_name_prefix="fleetserve-cache-load"
            )
        return self._pool

    def _submit(self, pool: ThreadPoolExecutor, route: Route, load: Load) -> None:
        try:
            pool.submit(self._run, route, load)
        except RuntimeError:
            if not self._closed:
                raise
            # close() shut the pool down after this load was registered, and has already
            # answered its waiters.

    def _run(self, route: Route, load: Load) -> None:
        """Run the loader for ``load``'s key and publish the outcome to its waiters."""
        try:
            model = self._loader(route)
        except BaseException as exc:
            self._fail(route, load, as_failure(route, exc))
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and the like still stop the thread
            return
        self._admit(route, load, model)

    def _admit(self, route: Route, load: Load, model: LoadedModel) -> None:
        gone: list[LoadedModel] = []
        with self._lock:
            current = self._inflight.get(route.cache_key) is load
            if current:
                del self._inflight[route.cache_key]
                self._counts.loads += 1
                if load.waiters or not load.retired:
                    self._ledger.insert(model, load.waiters, retired=load.retired)
                    gone = self._settle(route)
                load.model = model
                load.done.set()
        if not current:  # the cache closed meanwhile; close() already answered the waiters
            return
        self._metrics.load_seconds.observe(model.load_seconds)
        logger.debug(
            "bot %s version %s loaded in %.2f ms (%s, %d KB)",
            route.bot_id,
            route.model_version,
            1000 * model.load_seconds,
            model.quantization,
            model.footprint_bytes // 1024,
        )
        self._drop(gone)

    def _fail(self, route: Route, load: Load, failure: QueryFailed) -> None:
        with self._lock:
            if self._inflight.get(route.cache_key) is load:
                del self._inflight[route.cache_key]
            self._counts.loads_failed += 1
            self._memo.remember(route.cache_key, failure, self._clock())
            load.failure = failure
            load.done.set()
        self._metrics.load_failures.labels(reason=failure.reason).inc()
        logger.warning(
            "bot %s version %s failed to load (%s): %s",
            route.bot_id,
            route.model_version,
            failure.reason,
            failure,
        )

    # -- budget -------------------------------------------------------------------------

    def _settle(self, cause: Route) -> list[LoadedModel]:
        """Evict to fit, warn once per episode of pinned-over-budget; under the lock."""
        evicted = self._ledger.evict()
        if evicted:
            self._counts.evictions += len(evicted)
            self._metrics.evictions.inc(len(evicted))
        over = self._ledger.over_budget()
        if over and not self._warned_over_budget:
            logger.warning(
                "model cache over budget after bot %s version %s with nothing left to evict "
                "(the rest is pinned): %d bytes in %d models against %d bytes (max models %s); "
                "evicting as batches release them",
                cause.bot_id,
                cause.model_version,
                self._ledger.resident_bytes,
                len(self._ledger),
                self._ledger.budget_bytes,
                self._ledger.max_models,
            )
        self._warned_over_budget = over
        self._publish_resident()
        return evicted

    def _drop(self, models: list[LoadedModel]) -> None:
        """Models that left the ledger: logged, then freed on the reaper (outside the lock)."""
        if logger.isEnabledFor(logging.DEBUG):
            for model in models:
                logger.debug(
                    "bot %s version %s left the cache (%d KB)",
                    model.route.bot_id,
                    model.route.model_version,
                    model.footprint_bytes // 1024,
                )
        self._reaper.drop(models)

    def _publish_resident(self) -> None:
        self._metrics.resident_bytes.set(self._ledger.resident_bytes)
        self._metrics.resident_models.set(len(self._ledger))
