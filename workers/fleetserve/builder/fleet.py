"""Build many bots on every core, one process per core, reporting each bot as it finishes.

With a search, the fleet is built in two waves (``builder/warm.py``): one leader per group
of similar bots searches with the full budget, then the others start from their leader's
best parameters with a fraction of it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetserve.bots.discover import BotSource, load_source
from fleetserve.builder.build import build_bot
from fleetserve.builder.config import BuildConfig
from fleetserve.builder.result import BotBuildResult
from fleetserve.builder.warm import GroupKey, group_key, leaders, warm_params
from fleetserve.models import kernel
from fleetserve.store.local import LocalDirectoryStore


@dataclass(frozen=True)
class _Job:
    # A bot travels to a worker as its file's path, which is cheap to send; the worker loads it.
    source: BotSource
    config: BuildConfig
    store_root: Path
    warm_start: tuple[Mapping[str, Any], ...] = ()
    budget_s: float | None = None


def build_source(
    source: BotSource,
    config: BuildConfig,
    store_root: Path,
    *,
    warm_start: tuple[Mapping[str, Any], ...] = (),
    budget_s: float | None = None,
) -> BotBuildResult:
    """Load and build one bot; a bad definition becomes a failed result, never an exception."""
    loaded = load_source(source, config.conflicts)
    if loaded.loaded is None:
        error = loaded.error
        return BotBuildResult(
            source.bot_id,
            "failed",
            source=str(source.path),
            reason=error.reason if error else "unknown",
            message=str(error) if error else None,
        )
    return build_bot(
        loaded.loaded.definition,
        config,
        LocalDirectoryStore(store_root),
        conflicts=loaded.loaded.report.conflicts,
        warm_start=warm_start,
        budget_s=budget_s,
    )


def _run_job(job: _Job) -> BotBuildResult:
    return build_source(
        job.source, job.config, job.store_root, warm_start=job.warm_start, budget_s=job.budget_s
    )


def build_all(
    sources: Sequence[BotSource],
    config: BuildConfig,
    store_root: Path,
    *,
    workers: int | None = None,
    on_result: Callable[[BotBuildResult], None] = lambda _r: None,
) -> list[BotBuildResult]:
    """Every bot's result, in completion order. ``workers=1`` builds in this process."""
    processes = workers or os.cpu_count() or 1
    results: list[BotBuildResult] = []

    def wave(jobs: list[_Job]) -> None:
        for result in _results(jobs, processes):
            results.append(result)
            on_result(result)

    if not config.searching:
        wave([_Job(source, config, store_root) for source in sources])
        return results
    first, rest = leaders(sources)
    wave([_Job(sources[i], config, store_root) for i in first])
    best = _best_by_group(sources, first, results)
    budget = config.search_budget_s * config.warm_budget_fraction
    wave(
        [_Job(sources[i], config, store_root, warm_params(sources, best, i), budget) for i in rest]
    )
    return results


def _best_by_group(
    sources: Sequence[BotSource], first: Sequence[int], results: Sequence[BotBuildResult]
) -> dict[GroupKey, Mapping[str, Any]]:
    by_id = {r.bot_id: r for r in results}
    best: dict[GroupKey, Mapping[str, Any]] = {}
    for index in first:
        result = by_id.get(sources[index].bot_id)
        if result is not None and result.search and result.search.get("best_params"):
            best[group_key(sources[index])] = result.search["best_params"]
    return best


def _results(jobs: list[_Job], workers: int) -> Iterator[BotBuildResult]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_run_job, jobs)
        return
    # Compiled (or loaded from numba's cache) here first, so that the workers only load it.
    kernel.warm_up()
    # forkserver, not fork: this process may hold threads (the progress display, Kafka
    # clients, a test runner's) whose locks a forked child would inherit held and hang on.
    # The server imports the builder once and forks each worker from that clean process.
    # A pool of futures, not multiprocessing.Pool: a worker that dies breaks the build with
    # an error instead of waiting forever for its result.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(workers, mp_context=context, initializer=kernel.warm_up) as pool:
        pending = [pool.submit(_run_job, job) for job in jobs]
        try:
            for done in as_completed(pending):
                yield done.result()
        finally:
            for future in pending:
                future.cancel()
