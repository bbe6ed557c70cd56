"""`fleetserve build`: one bot, a folder of bots or a fleet, into published snapshots."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fleetserve.bots.discover import find_bots
from fleetserve.builder.config import BuildConfig
from fleetserve.builder.fleet import build_all
from fleetserve.builder.report import results_table, summarize, write_report
from fleetserve.builder.result import BotBuildResult
from fleetserve.cli.context import pass_settings
from fleetserve.config.settings import Settings


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--search-budget",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Seconds of hyper-parameter search per bot (0: the family's defaults).",
)
@click.option(
    "--int8-tolerance",
    type=float,
    default=0.5,
    show_default=True,
    help="Publish int8 only if it loses at most this many accuracy points to fp32.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for splits and training."
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Build processes [default: one per core].",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON report path [default: <store>/build-report.json].",
)
@pass_settings
def build(
    settings: Settings,
    path: Path,
    search_budget: float,
    int8_tolerance: float,
    seed: int,
    workers: int | None,
    report_path: Path | None,
) -> None:
    """Build one bot, a folder of bots or a fleet into snapshots; unchanged bots are skipped."""
    sources = find_bots(path)
    config = BuildConfig(
        search_budget_s=search_budget, int8_tolerance_points=int8_tolerance, seed=seed
    )
    console = Console(stderr=True)
    started = time.perf_counter()
    with _progress(console) as progress:
        task = progress.add_task("building", total=len(sources))

        def advance(_result: BotBuildResult) -> None:
            progress.advance(task)

        results = build_all(
            sources,
            config,
            settings.store_dir,
            workers=workers,
            on_result=advance,
        )
    summary = summarize(results, time.perf_counter() - started)
    report = report_path or settings.store_dir / "build-report.json"
    write_report(report, results, summary)
    Console().print(results_table(results))
    click.echo(
        f"built {summary['built']}, skipped {summary['skipped']}, failed {summary['failed']} "
        f"of {summary['bots']} bots in {summary['wall_seconds']} s "
        f"(int8 {summary['int8']}, fp32 {summary['fp32']}; median {summary['median_model_bytes']} "
        f"bytes); store {settings.store_dir}; report {report}"
    )
    if summary["failed"]:
        raise SystemExit(1)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
