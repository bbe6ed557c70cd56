"""Build many bots on every core, one process per core, reporting each bot as it finishes."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetserve.bots.discover import BotSource, load_source
from fleetserve.builder.build import build_bot
from fleetserve.builder.config import BuildConfig
from fleetserve.builder.result import BotBuildResult
from fleetserve.store.local import LocalDirectoryStore


@dataclass(frozen=True)
class _Job:
    # A bot travels to a worker as its file's path, which is cheap to send; the worker loads it.
    source: BotSource
    config: BuildConfig
    store_root: Path


def build_source(source: BotSource, config: BuildConfig, store_root: Path) -> BotBuildResult:
    """Load and build one bot; a bad definition becomes a failed result, never an exception."""
    loaded = load_source(source)
    if loaded.loaded is None:
        error = loaded.error
        return BotBuildResult(
            source.bot_id,
            "failed",
            source=str(source.path),
            reason=error.reason if error else "unknown",
            message=str(error) if error else None,
        )
    return build_bot(loaded.loaded.definition, config, LocalDirectoryStore(store_root))


def _run_job(job: _Job) -> BotBuildResult:
    return build_source(job.source, job.config, job.store_root)


def build_all(
    sources: Sequence[BotSource],
    config: BuildConfig,
    store_root: Path,
    *,
    workers: int | None = None,
    on_result: Callable[[BotBuildResult], None] = lambda _r: None,
) -> list[BotBuildResult]:
    """Every bot's result, in completion order. ``workers=1`` builds in this process."""
    jobs = [_Job(source, config, store_root) for source in sources]
    results: list[BotBuildResult] = []
    for result in _results(jobs, workers or os.cpu_count() or 1):
        results.append(result)
        on_result(result)
    return results


def _results(jobs: list[_Job], workers: int) -> Iterator[BotBuildResult]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_run_job, jobs)
        return
    # fork: workers inherit the imported numpy and onnxruntime instead of importing them again.
    context = multiprocessing.get_context("fork")
    chunk = max(1, min(16, len(jobs) // (workers * 8)))
    with context.Pool(workers) as pool:
        yield from pool.imap_unordered(_run_job, jobs, chunksize=chunk)
