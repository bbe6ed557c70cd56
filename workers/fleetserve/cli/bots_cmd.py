"""`fleetserve bots`: check users' bot files and draw reproducible fleets, offline."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import click

from fleetserve.bots.definition import BotDefinition
from fleetserve.bots.discover import BotResult, discover_bots
from fleetserve.bots.fleet import make_fleet
from fleetserve.bots.summary import KindSummary, summarize, total
from fleetserve.bots.writer import write_fleet
from fleetserve.cli.exit_codes import FAILURE
from fleetserve.cli.tables import format_table

SUMMARY_COLUMNS = ("kind", "language", "bots", "intents", "utterances", "out_of_scope")


@click.group("bots")
def bots() -> None:
    """Bot definitions: check bot files, draw fleets from the bundled datasets."""


@bots.command("make-fleet")
@click.argument("n", type=click.IntRange(min=1))
@click.option(
    "--seed", type=int, default=0, show_default=True, help="The same seed draws the same fleet."
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Fleet directory (fleet.json + one JSONL per bot); an existing one is updated.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder holding clinc150/ and parakqc_ko/; default: the bundled copy.",
)
def make_fleet_cmd(n: int, seed: int, out_dir: Path, data_dir: Path | None) -> None:
    """Draw a reproducible fleet of N bots from the bundled datasets."""
    started = time.perf_counter()
    fleet = make_fleet(n, seed, data_dir)
    report = write_fleet(fleet, out_dir, seed=seed)
    click.echo(_summary_table(summarize(fleet)))
    click.echo(
        f"wrote {report.bots} bots to {report.out_dir} (seed {seed}; {report.written} files "
        f"written, {report.unchanged} unchanged, {report.removed} removed) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    if any(bot.source.startswith("parakqc_ko/") for bot in fleet):
        click.echo("note: Korean bots derive from paraKQC and carry CC BY-SA 4.0; see NOTICE.md")


@bots.command("check")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("-v", "--verbose", is_flag=True, help="Also print a summary of the bots that load.")
@click.pass_context
def check(ctx: click.Context, path: Path, verbose: bool) -> None:
    """Load bots and report every problem without building.

    PATH is a bot file (.jsonl, .ndjson, .csv), a folder of them, or a fleet folder with
    fleet.json. Prints one line per bad bot, `BOT_ID: REASON: MESSAGE`, and exits 1 if any
    bot is bad, else 0.
    """
    good: list[BotDefinition] = []
    bad: list[BotResult] = []
    duplicates = 0
    for result in discover_bots(path):
        if result.loaded is None:
            bad.append(result)
            click.echo(f"{result.bot_id}: {_reason(result)}: {result.error}")
            continue
        good.append(result.loaded.definition)
        duplicates += result.loaded.report.duplicates_dropped
    if verbose and good:
        click.echo(_summary_table(summarize(good)))
    if bad:
        click.echo(f"{len(bad)} of {len(bad) + len(good)} bots invalid", err=True)
        ctx.exit(FAILURE)
    dropped = f", {duplicates} duplicate utterances dropped" if duplicates else ""
    click.echo(f"ok ({len(good)} bot{'s' if len(good) != 1 else ''}{dropped})")


def _reason(result: BotResult) -> str:
    return result.error.reason if result.error is not None else "unknown"


def _summary_table(rows: Sequence[KindSummary]) -> str:
    return format_table(SUMMARY_COLUMNS, [asdict(row) for row in [*rows, total(rows)]])
