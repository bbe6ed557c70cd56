"""`fleetserve shadow-report`: how a shadow deployment's answers compare with the real ones."""

from __future__ import annotations

from collections.abc import Sequence

import click
import orjson

from fleetserve.cli.context import pass_settings
from fleetserve.cli.tables import format_table
from fleetserve.config.settings import Settings
from fleetserve.kafka.probe import describe_cluster
from fleetserve.shadow.join import ShadowReport, ShadowStats
from fleetserve.shadow.report import shadow_report
from fleetserve.topics.loader import load_topics

TOTAL_LABEL = "(total)"
MAX_VERSIONS_SHOWN = 2
COLUMNS = (
    "bot",
    "joined",
    "agree",
    "mean |d conf|",
    "max |d conf|",
    "fallback real",
    "fallback shadow",
    "real versions",
    "shadow versions",
    "real only",
    "shadow only",
)


@click.command("shadow-report")
@click.option(
    "--shadow-topic", required=True, metavar="T", help="Topic the shadow group replies to."
)
@click.option(
    "--real-topic", metavar="T", help="Topic of the real replies [default: the replies topic]."
)
@click.option("--bot", "bots", multiple=True, metavar="BOT", help="Only this bot (repeatable).")
@click.option(
    "--timeout",
    type=click.FloatRange(0.5, 3600),
    default=30.0,
    show_default=True,
    help="Seconds allowed for reading both topics to their end (exit 3 past it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@pass_settings
def shadow_report_command(
    settings: Settings,
    shadow_topic: str,
    real_topic: str | None,
    bots: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Compare shadow and real replies per bot: agreement, confidence deltas, fallbacks.

    Both topics are read from the beginning to their end as of now (committed records
    only), and replies are joined by bot and request id.
    """
    if real_topic is None:
        topics = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix)
        real_topic = topics.name("replies")
    if real_topic == shadow_topic:
        raise click.BadParameter(
            "the shadow topic is the real topic", param_hint="--shadow-topic/--real-topic"
        )
    describe_cluster(settings.kafka, min(timeout, 10.0))
    report = shadow_report(
        settings.kafka,
        real_topic=real_topic,
        shadow_topic=shadow_topic,
        bots=frozenset(bots),
        timeout_s=timeout,
    )
    if as_json:
        document = {"real_topic": real_topic, "shadow_topic": shadow_topic, **_document(report)}
        click.echo(orjson.dumps(document).decode())
        return
    click.echo(f"real: {real_topic}  shadow: {shadow_topic}")
    rows = [report_row(stats) for stats in (*report.bots, report.total)]
    click.echo(format_table(COLUMNS, rows))


def _document(report: ShadowReport) -> dict[str, object]:
    return {"bots": list(report.bots), "total": report.total}


def report_row(stats: ShadowStats) -> dict[str, object]:
    """One table row; rates as percentages, absent values as '-'."""
    return {
        "bot": stats.bot_id or TOTAL_LABEL,
        "joined": stats.joined,
        "agree": _percent(stats.agreement_rate),
        "mean |d conf|": _fixed(stats.mean_abs_confidence_delta),
        "max |d conf|": _fixed(stats.max_abs_confidence_delta),
        "fallback real": _percent(stats.real_fallback_rate),
        "fallback shadow": _percent(stats.shadow_fallback_rate),
        "real versions": _versions(stats.real_versions),
        "shadow versions": _versions(stats.shadow_versions),
        "real only": stats.real_only,
        "shadow only": stats.shadow_only,
    }


def _percent(rate: float | None) -> str | None:
    return None if rate is None else f"{rate * 100:.1f}%"


def _fixed(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


def _versions(versions: Sequence[str]) -> str | None:
    if not versions:
        return None
    shown = ",".join(versions[:MAX_VERSIONS_SHOWN])
    hidden = len(versions) - MAX_VERSIONS_SHOWN
    return f"{shown} +{hidden}" if hidden > 0 else shown
