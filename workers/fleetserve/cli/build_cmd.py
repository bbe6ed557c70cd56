"""`fleetserve build`: one bot, a folder of bots or a fleet, into published snapshots."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fleetserve.bots.assemble import CONFLICT_POLICIES, DEFAULT_CONFLICT_POLICY
from fleetserve.bots.discover import find_bots
from fleetserve.builder.config import BuildConfig
from fleetserve.builder.fleet import build_all
from fleetserve.builder.report import results_table, summarize, summary_line, write_report
from fleetserve.builder.result import BotBuildResult
from fleetserve.cli.context import pass_settings
from fleetserve.config.settings import Settings
from fleetserve.models.config import (
    DEFAULT_MAX_MODEL_KB,
    DEFAULT_QUANTIZATION,
    INT4_MIN_UTTERANCES,
    QUANTIZATION_MODES,
)
from fleetserve.models.distill import AUTO_MIN_UTTERANCES, DISTILL_MODES
from fleetserve.models.objective import DEFAULT_LATENCY_WEIGHT, DEFAULT_SIZE_WEIGHT
from fleetserve.models.search import STRATEGIES, Strategy
from fleetserve.models.width import AUTO_MIN_UTTERANCES as WIDTH_MIN_UTTERANCES
from fleetserve.models.width import WIDTH_MODES


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--search",
    "search_strategy",
    type=click.Choice(STRATEGIES),
    default=None,
    help="Search strategy, each trial scored by k-fold cross-validation "
    "[default: tpe with --search-budget, else none].",
)
@click.option(
    "--search-budget",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Seconds of search per bot (0: the family's defaults, still cross-validated). "
    "In a fleet, one bot per group of similar bots gets it all; the others start from "
    "that bot's best and get --warm-budget-fraction of it.",
)
@click.option(
    "--warm-budget-fraction",
    type=click.FloatRange(0, 1),
    default=0.25,
    show_default=True,
    help="Share of --search-budget for bots warm-started from a similar bot's search.",
)
@click.option(
    "--max-model-kb",
    type=click.FloatRange(8),
    default=DEFAULT_MAX_MODEL_KB,
    show_default=True,
    help="Size cap of each published model; small bots get smaller tables on their own.",
)
@click.option(
    "--distill",
    type=click.Choice(DISTILL_MODES),
    default="auto",
    show_default=True,
    help="Train each model from two larger teachers' mean soft labels on the utterances and "
    f"word-dropped copies (about 5x the build time); auto: bots of {AUTO_MIN_UTTERANCES}+ "
    "utterances.",
)
@click.option(
    "--width",
    type=click.Choice(WIDTH_MODES),
    default="off",
    show_default=True,
    help="Compare table widths by cross-validation (each with the rows the size cap then "
    "allows) and keep the best; one cross-validation per width tried. Measured gains and "
    f"losses of up to 0.4 point on the bundled sets; auto: bots of {WIDTH_MIN_UTTERANCES}+ "
    "utterances without --search-budget.",
)
@click.option(
    "--fallback-quantile",
    type=click.FloatRange(0, 1, max_open=True),
    default=None,
    help="Fallback threshold: about this share of in-scope queries falls back.",
)
@click.option(
    "--target-oos-recall",
    type=click.FloatRange(0, 100, min_open=True),
    default=None,
    help="Fallback threshold: reject at least this percent of the bot's out-of-scope examples.",
)
@click.option(
    "--conflicts",
    type=click.Choice(CONFLICT_POLICIES),
    default=DEFAULT_CONFLICT_POLICY,
    show_default=True,
    help="A text under two labels: keep the majority label (a tie drops it), the first, "
    "drop it, or fail the bot. Every resolution is listed in the report.",
)
@click.option(
    "--size-weight",
    type=click.FloatRange(0),
    default=DEFAULT_SIZE_WEIGHT,
    show_default=True,
    help="Search objective: accuracy points a KB of model costs.",
)
@click.option(
    "--latency-weight",
    type=click.FloatRange(0),
    default=DEFAULT_LATENCY_WEIGHT,
    show_default=True,
    help="Search objective: accuracy points a microsecond of batch-1 latency costs.",
)
@click.option(
    "--quantization",
    type=click.Choice(QUANTIZATION_MODES),
    default=DEFAULT_QUANTIZATION,
    show_default=True,
    help="The table's format (the head is int8). int4 holds about 1.7 times the weights per "
    "byte, and large bots spend them on a wider table, but costs more CPU per lookup; auto: "
    f"int4 for bots of {INT4_MIN_UTTERANCES}+ utterances, int8 below. A model the gate "
    "refuses falls back to int8, then fp32.",
)
@click.option(
    "--quantized-tolerance",
    "--int8-tolerance",
    "quantized_tolerance",
    type=float,
    default=0.5,
    show_default=True,
    help="Publish a quantized model unless it loses more than this many accuracy points to "
    "fp32 beyond chance (one-sided, 5 %, on word-dropped copies of the utterances).",
)
@click.option(
    "--keep-fp32/--no-keep-fp32",
    default=False,
    show_default=True,
    help="Keep the fp32 model beside a quantized snapshot, for `fleetserve eval`.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for folds and training.")
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
    /,
    path: Path,
    search_strategy: Strategy | None,
    workers: int | None,
    report_path: Path | None,
    **options: Any,
) -> None:
    """Build one bot, a folder of bots or a fleet into snapshots; unchanged bots are skipped.

    Each configuration is scored by k-fold cross-validation on the bot's utterances, and
    the published model is then refit on all of them.
    """
    sources = find_bots(path)
    budget = options.pop("search_budget")
    strategy: Strategy = search_strategy or ("tpe" if budget > 0 else "none")
    config = BuildConfig(
        search_budget_s=budget,
        search_strategy=strategy,
        tolerance_points=options.pop("quantized_tolerance"),
        **options,
    )
    console = Console(stderr=True)
    if settings.store_kafka:  # snapshots are built on disk first, then published
        console.print(
            f"--store kafka: building into {settings.store_dir}; "
            "send the snapshots to the models topic with `fleetserve publish` (or deploy)"
        )
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
    click.echo(f"{summary_line(summary)}; store {settings.store_dir}; report {report}")
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
