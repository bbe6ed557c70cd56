"""`fleetserve clean BOTFILE`: suspected mislabels of a bot's training data, and a cleaned copy."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
import orjson

from fleetserve.clean.bot import CleanReport, clean_bot, write_cleaned
from fleetserve.clean.cleaned import Suspect
from fleetserve.clean.pico import PicoConfig
from fleetserve.cli.tables import format_table

COLUMNS = ("line", "text", "label", "p(label)", "proposed", "p(proposed)", "observed")


@click.command()
@click.argument("bot_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option(
    "--repeats",
    type=click.IntRange(1, 10),
    default=2,
    show_default=True,
    help="How many different splittings check every text.",
)
@click.option("--max-iterations", type=click.IntRange(1, 20), default=5, show_default=True)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="Relabel a text when the proposed intent's posterior is at least this.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=50,
    show_default=True,
    help="Suspects listed (0: all).",
)
@click.option("--apply", "apply_", is_flag=True, help="Write a cleaned bot file to --out.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where --apply writes the cleaned file (the original is kept).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document: summary and suspects.")
def clean(  # noqa: PLR0913 - click passes one parameter per option
    bot_file: Path,
    *,
    folds: int,
    repeats: int,
    max_iterations: int,
    threshold: float,
    seed: int,
    limit: int,
    apply_: bool,
    out: Path | None,
    as_json: bool,
) -> None:
    """Find suspected mislabels in BOT_FILE with the bot's own model family (PICO).

    Lists each suspect with the posterior of its label and of the proposed one, and
    resolves texts that appear under two intents. With --apply --out FILE, writes a
    cleaned copy: labels whose proposal reaches --threshold are changed.
    """
    if apply_ and out is None:
        raise click.BadParameter("--apply needs --out FILE", param_hint="--out")
    config = PicoConfig(
        folds=folds, repeats=repeats, max_iterations=max_iterations, threshold=threshold, seed=seed
    )
    report = clean_bot(bot_file, config)
    if apply_ and out is not None:
        try:
            write_cleaned(report, out)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--out") from None
    shown = report.suspects if limit == 0 else report.suspects[:limit]
    if as_json:
        document = {
            "summary": report.summary,
            "rounds": [asdict(r) for r in report.result.rounds],
            "suspects": [asdict(s) for s in shown],
            "written": str(out) if apply_ else None,
        }
        click.echo(orjson.dumps(document).decode())
        return
    _print(report, shown, out if apply_ else None)


def _print(report: CleanReport, shown: list[Suspect], out: Path | None) -> None:
    s = report.summary
    click.echo(
        f"{s['bot_file']}: {s['texts']} texts, {s['intents']} intents, "
        f"{s['contradictory_texts']} with contradictory labels; {s['rounds']} rounds "
        f"({s['stop_reason']}), {s['noise_family']} noise channel, estimated noise "
        f"{100 * s['estimated_noise_rate']:.1f}%"
    )
    rows = [
        {
            "line": suspect.line,
            "text": suspect.text[:60],
            "label": suspect.label,
            "p(label)": f"{suspect.p_label:.3f}",
            "proposed": suspect.proposed,
            "p(proposed)": f"{suspect.p_proposed:.3f}",
            "observed": ",".join(f"{k}x{v}" for k, v in suspect.observed.items()),
        }
        for suspect in shown
    ]
    if rows:
        click.echo(format_table(COLUMNS, rows))
    click.echo(
        f"suspects {s['suspects']}, relabelled at >= {s['threshold']}: {s['relabelled']}, "
        f"contradictions resolved: {s['contradictory_texts']}"
        + (f"; cleaned file written to {out}" if out else "")
    )
