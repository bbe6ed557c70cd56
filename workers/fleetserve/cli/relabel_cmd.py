"""`fleetserve relabel collect | discover | apply | report`: the data loop over the replies."""

from __future__ import annotations

import getpass
import time
from collections import Counter
from pathlib import Path

import click
import orjson

from fleetserve.cli.context import pass_settings
from fleetserve.cli.lifecycle import on_stop_signals
from fleetserve.cli.tables import format_table
from fleetserve.config.settings import Settings
from fleetserve.kafka.probe import describe_cluster
from fleetserve.relabel.apply import apply_review
from fleetserve.relabel.botsource import BotSource
from fleetserve.relabel.collect import CollectOptions, collect
from fleetserve.relabel.discover import discover_clusters
from fleetserve.relabel.files import (
    queue_bots,
    read_clusters,
    read_queue,
    write_clusters,
    write_queue,
)
from fleetserve.relabel.intake import IntakeRules
from fleetserve.relabel.report import relabel_report
from fleetserve.relabel.selection import SelectionRules
from fleetserve.topics.loader import load_topics

OUT = click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("review"),
    show_default=True,
    help="Review directory: per bot a queue and its clusters.",
)
BOTS = click.option(
    "--bots",
    "bots_path",
    type=click.Path(exists=True, path_type=Path),
    help="The bots' definition files (a file, folder or fleet).",
)
COUNT_COLUMNS = (
    "bot",
    "replies",
    "selected",
    "new",
    "repeat",
    "duplicate",
    "text off",
    "noise",
    "not selected",
    "disagree",
    "clusters",
)


@click.group()
def relabel() -> None:
    """Turn replies into better bots: collect, discover intents, apply labels, report."""


@relabel.command("collect")
@OUT
@BOTS
@click.option(
    "--group",
    default="fleetserve-relabel",
    show_default=True,
    help="Consumer group; a rerun resumes where the last one committed.",
)
@click.option(
    "--shadow-topic",
    metavar="T",
    help="Also select disagreements with this shadow group's replies.",
)
@click.option("--bot", "bot_ids", multiple=True, metavar="BOT", help="Only this bot (repeatable).")
@click.option(
    "--below",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Confidence below this is low.",
)
@click.option(
    "--margin",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="A top-two gap below this is small.",
)
@click.option(
    "--max-chars",
    type=click.IntRange(1),
    default=300,
    show_default=True,
    help="Longer texts are dropped as noise.",
)
@click.option(
    "--min-cluster-size",
    type=click.IntRange(2),
    default=3,
    show_default=True,
    help="Smallest group of fallback queries reported as a candidate intent.",
)
@click.option("--follow", is_flag=True, help="Keep reading past the ends seen at the start.")
@click.option(
    "--timeout",
    type=click.FloatRange(1),
    default=300.0,
    show_default=True,
    help="Seconds a bounded run may take to reach the ends (exit 3 past it).",
)
@click.option("--json", "as_json", is_flag=True)
@pass_settings
def collect_command(  # noqa: PLR0913 - click passes one parameter per option
    settings: Settings,
    *,
    out_dir: Path,
    bots_path: Path | None,
    group: str,
    shadow_topic: str | None,
    bot_ids: tuple[str, ...],
    below: float,
    margin: float,
    max_chars: int,
    min_cluster_size: int,
    follow: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Select replies worth a label into ranked per-bot review queues, then cluster fallbacks."""
    topic = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix).name(
        "replies"
    )
    describe_cluster(settings.kafka)
    rules = IntakeRules(
        selection=SelectionRules(below=below, margin=margin),
        max_chars=max_chars,
        bots=frozenset(bot_ids),
        with_shadow=shadow_topic is not None,
    )
    options = CollectOptions(
        out_dir=out_dir,
        group=group,
        shadow_topic=shadow_topic,
        rules=rules,
        follow=follow,
        timeout_s=timeout,
        min_cluster_size=min_cluster_size,
    )
    # SIGINT/SIGTERM end the run at the next record: what was read is written and committed.
    stopped: list[int] = []
    with on_stop_signals(stopped.append):
        report = collect(
            settings.kafka, topic, options, BotSource(bots_path), should_stop=lambda: bool(stopped)
        )
    if stopped:
        click.echo(
            f"stopped by signal {stopped[0]}; what was read is written and committed", err=True
        )
    if as_json:
        click.echo(
            orjson.dumps(
                {
                    "bots": {b: dict(c) for b, c in report.counts.items()},
                    "clusters": report.clusters,
                    "written": report.bots_written,
                    "seconds": report.seconds,
                }
            ).decode()
        )
        return
    rows = [
        _count_row(bot, counts, report.clusters.get(bot))
        for bot, counts in sorted(report.counts.items())
    ]
    click.echo(format_table(COUNT_COLUMNS, rows))
    click.echo(
        f"review queues in {out_dir} "
        f"({len(report.bots_written)} bots updated, {report.seconds:.1f} s)"
    )


def _count_row(bot: str, counts: Counter[str], clusters: int | None) -> dict[str, object]:
    noise = sum(v for k, v in counts.items() if k.startswith("noise_"))
    return {
        "bot": bot,
        "replies": counts["replies"],
        "selected": counts["selected"],
        "new": counts["collected_new"],
        "repeat": counts["collected_repeat"],
        "duplicate": counts["collected_duplicate"],
        "text off": counts["text_off"],
        "noise": noise,
        "not selected": counts["not_selected"],
        "disagree": counts["shadow_disagreements"],
        "clusters": clusters,
    }


@relabel.command("discover")
@click.argument("review_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@BOTS
@click.option("--min-cluster-size", type=click.IntRange(2), default=3, show_default=True)
def discover_command(review_dir: Path, bots_path: Path | None, min_cluster_size: int) -> None:
    """Re-cluster the fallback queries of every queue in REVIEW_DIR (names are kept)."""
    source = BotSource(bots_path)
    for bot in queue_bots(review_dir):
        entries = read_queue(review_dir, bot)
        clusters = discover_clusters(
            list(entries.values()),
            source.definition(bot),
            min_cluster_size=min_cluster_size,
            previous=read_clusters(review_dir, bot),
        )
        write_clusters(review_dir, bot, clusters)
        write_queue(review_dir, bot, entries.values())
        click.echo(f"{bot}: {len(clusters)} clusters of fallback queries")


@relabel.command("apply")
@click.argument("review", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--bots",
    "bots_path",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="The bots' definition files to merge into.",
)
@click.option("--actor", default=None, help="Who is recorded as accepting [default: current user].")
@click.option("--json", "as_json", is_flag=True)
def apply_command(review: Path, bots_path: Path, actor: str | None, as_json: bool) -> None:
    """Merge accepted labels and named clusters of REVIEW into the bot files (idempotent)."""
    results = apply_review(
        review, BotSource(bots_path), now_ms=int(time.time() * 1000), actor=actor or _user()
    )
    if as_json:
        click.echo(
            orjson.dumps(
                [
                    {
                        "bot_id": r.bot_id,
                        "file": r.file,
                        "added": r.added,
                        "new_intents": r.new_intents,
                        "counts": dict(r.counts),
                        "error": r.error,
                    }
                    for r in results
                ]
            ).decode()
        )
    else:
        for r in results:
            detail = ", ".join(f"{k} {v}" for k, v in sorted(r.counts.items()) if v)
            new = f", new intents {','.join(r.new_intents)}" if r.new_intents else ""
            click.echo(
                f"{r.bot_id}: added {r.added}{new}"
                + (f" ({detail})" if detail else "")
                + (f"; error: {r.error}" if r.error else "")
            )
        click.echo("next: fleetserve build, deploy --stage beta, shadow-report, promote")
    if any(r.error for r in results):
        raise SystemExit(1)


@relabel.command("report")
@click.argument(
    "review_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("review"),
)
@click.option("--json", "as_json", is_flag=True)
def report_command(review_dir: Path, as_json: bool) -> None:
    """Per bot: queue size, labelled, clusters, utterances applied and new intents."""
    statuses = relabel_report(review_dir)
    if as_json:
        click.echo(orjson.dumps([vars(s) for s in statuses]).decode())
        return
    columns = (
        "bot",
        "entries",
        "queries",
        "labelled",
        "rejected",
        "clusters",
        "named",
        "applied",
        "new intents",
    )
    rows = [
        {
            "bot": s.bot_id,
            "entries": s.entries,
            "queries": s.queries,
            "labelled": s.labelled,
            "rejected": s.rejected,
            "clusters": s.clusters,
            "named": s.named_clusters,
            "applied": s.applied,
            "new intents": ",".join(s.new_intents) or None,
        }
        for s in statuses
    ]
    click.echo(format_table(columns, rows))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
