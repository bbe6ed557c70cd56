"""`fleetserve deploy / promote / rollback / deployments`: the per-bot stage control plane."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from contextlib import closing
from typing import Any

import click
import orjson

from fleetserve.cli.context import pass_settings
from fleetserve.cli.tables import format_table
from fleetserve.config.settings import Settings, Stage
from fleetserve.core.facts import STAGES
from fleetserve.deploy.control import ControlPlane
from fleetserve.deploy.placement import Placement, PublishingPlacement, TopicPlacement
from fleetserve.errors import DeploymentRefused
from fleetserve.kafka.probe import describe_cluster
from fleetserve.monitor.promotion import PromotionPolicy, promotion_problems
from fleetserve.shadow.report import shadow_report
from fleetserve.store.local import LocalDirectoryStore
from fleetserve.store.select import model_store
from fleetserve.topics.loader import load_topics

STAGE_CHOICE = click.Choice([s.value for s in Stage])


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def actor_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--actor",
        default=_default_actor,
        show_default="current user",
        help="Who is recorded as making the change.",
    )(fn)


def control_plane(settings: Settings, actor: str) -> ControlPlane:
    """Deployments on the deployments topic; snapshots placed on the models topic first.

    With ``--store DIR`` a snapshot is checked in the directory and published; with
    ``--store kafka`` it must be on the models topic already.
    """
    topics = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix)
    describe_cluster(settings.kafka)
    models = model_store(settings, topics)
    placement: Placement = (
        TopicPlacement(models)
        if settings.store_kafka
        else PublishingPlacement(LocalDirectoryStore(settings.store_dir), models)
    )
    return ControlPlane(settings.kafka, topics.name("deployments"), placement, actor)


def _echo_stage(record: dict[str, Any], stage: str) -> None:
    live = record["stages"][stage]
    where = live.get("location")
    at = f" at {where['topic']}[{where['partition']}]@{where['offset']}" if where else ""
    click.echo(
        f"{record['bot_id']} {stage} -> {live['model_version']} (sha256 {live['sha256'][:12]}…, "
        f"{record['action']} by {record['actor']}){at}"
    )


@click.command()
@click.argument("bot_id")
@click.argument("version")
@click.option("--stage", type=STAGE_CHOICE, required=True, help="Stage to serve VERSION on.")
@click.option(
    "--include-query-text/--no-query-text",
    default=None,
    help="Whether replies carry the query text (privacy); default: keep the stage's setting.",
)
@actor_option
@pass_settings
def deploy(
    settings: Settings,
    bot_id: str,
    version: str,
    stage: str,
    include_query_text: bool | None,
    actor: str,
) -> None:
    """Serve a built snapshot of a bot on a stage (refused if missing or altered)."""
    with closing(control_plane(settings, actor)) as plane:
        record = plane.deploy(bot_id, version, stage, include_query_text)
    _echo_stage(record, stage)


@click.command()
@click.argument("bot_id")
@click.option("--from", "source", type=STAGE_CHOICE, required=True, help="Stage to copy from.")
@click.option("--to", "target", type=STAGE_CHOICE, required=True, help="Stage to serve it on.")
@click.option(
    "--guarded",
    is_flag=True,
    help="Refuse unless the shadow group's replies (--shadow-topic) meet the policy.",
)
@click.option("--shadow-topic", help="The replies topic of the shadow group serving --from.")
@click.option("--min-joined", type=click.IntRange(1), default=200, show_default=True)
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=0.9, show_default=True)
@click.option(
    "--max-fallback-increase", type=click.FloatRange(0, 1), default=0.05, show_default=True
)
@actor_option
@pass_settings
def promote(settings: Settings, /, bot_id: str, source: str, target: str, **options: Any) -> None:
    """Serve on one stage what another stage serves now, e.g. beta to real."""
    with closing(control_plane(settings, options["actor"])) as control:
        if options["guarded"]:
            _check_shadow(settings, control, bot_id, source, options)
        record = control.promote(bot_id, source, target)
    _echo_stage(record, target)


def _check_shadow(
    settings: Settings, control: ControlPlane, bot_id: str, source: str, options: dict[str, Any]
) -> None:
    if not options["shadow_topic"]:
        raise click.UsageError("--guarded needs --shadow-topic (the shadow group's replies)")
    live = ((control.current(bot_id) or {}).get("stages") or {}).get(source)
    if live is None:
        raise DeploymentRefused(f"{bot_id} has nothing deployed on {source} to promote")
    topics = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix)
    report = shadow_report(
        settings.kafka,
        real_topic=topics.name("replies"),
        shadow_topic=options["shadow_topic"],
        bots=frozenset({bot_id}),
    )
    stats = next((row for row in report.bots if row.bot_id == bot_id), None)
    policy = PromotionPolicy(
        options["min_joined"], options["min_agreement"], options["max_fallback_increase"]
    )
    problems = promotion_problems(stats, live["model_version"], policy)
    if problems:
        raise DeploymentRefused(f"guarded promotion of {bot_id} refused: " + "; ".join(problems))
    assert stats is not None
    click.echo(
        f"shadow evidence: {stats.joined} joined, agreement {stats.agreement_rate:.1%}, "
        f"fallback {stats.shadow_fallback_rate:.1%} (real {stats.real_fallback_rate:.1%})"
    )


@click.command()
@click.argument("bot_id")
@click.option("--stage", type=STAGE_CHOICE, required=True, help="Stage to roll back.")
@actor_option
@pass_settings
def rollback(settings: Settings, bot_id: str, stage: str, actor: str) -> None:
    """Return a stage to the snapshot it served before the current one."""
    with closing(control_plane(settings, actor)) as plane:
        record = plane.rollback(bot_id, stage)
    _echo_stage(record, stage)


@click.command()
@click.argument("bot_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the full records as JSON lines.")
@pass_settings
def deployments(settings: Settings, bot_id: str | None, as_json: bool) -> None:
    """Show what every bot (or one bot) serves on each stage."""
    with closing(control_plane(settings, "-")) as plane:
        table = plane.all_current()
    if bot_id is not None and bot_id not in table:
        raise click.ClickException(f"{bot_id} has no deployment record")
    records = [table[bot_id]] if bot_id is not None else list(table.values())
    if as_json:
        for record in records:
            click.echo(orjson.dumps(record).decode())
        return
    rows = [_row(record) for record in sorted(records, key=lambda r: r["bot_id"])]
    click.echo(format_table(["bot", *STAGES, "action", "actor"], rows))


def _row(record: dict[str, Any]) -> dict[str, object]:
    stages = record["stages"]
    row: dict[str, object] = {
        "bot": record["bot_id"],
        "action": record["action"],
        "actor": record["actor"],
    }
    for stage in STAGES:
        row[stage] = stages[stage]["model_version"] if stage in stages else None
    return row
