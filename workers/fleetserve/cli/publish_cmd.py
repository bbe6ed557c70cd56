"""`fleetserve publish`: copy built snapshots to the models topic, and optionally deploy them."""

from __future__ import annotations

import time
from contextlib import closing

import click

from fleetserve.cli.context import pass_settings
from fleetserve.cli.deploy_cmd import STAGE_CHOICE, actor_option
from fleetserve.config.settings import Settings
from fleetserve.deploy.control import ControlPlane
from fleetserve.deploy.placement import PublishingPlacement, build_order
from fleetserve.errors import ConfigError
from fleetserve.kafka.probe import describe_cluster
from fleetserve.store.local import LocalDirectoryStore
from fleetserve.store.select import model_store
from fleetserve.topics.loader import load_topics


@click.command()
@click.argument("bots", nargs=-1)
@click.option("--all-versions", is_flag=True, help="Every version, not only each bot's newest.")
@click.option(
    "--deploy",
    "stage",
    type=STAGE_CHOICE,
    help="Also deploy each bot's newest version on this stage (one record per bot).",
)
@actor_option
@pass_settings
def publish(
    settings: Settings, bots: tuple[str, ...], all_versions: bool, stage: str | None, actor: str
) -> None:
    """Publish snapshots from the build directory (--store DIR) to the models topic.

    Each bot's newest build by default (every bot in the directory unless BOTS are named).
    A snapshot the topic holds already is not sent again. Workers started with
    `--store kafka` then serve them on any machine.
    """
    if settings.store_kafka:
        raise ConfigError("publish copies from a build directory: give --store DIR, not kafka")
    source = LocalDirectoryStore(settings.store_dir)
    chosen = list(bots) or source.bots()
    snapshots = [
        (bot, version)
        for bot in chosen
        for version in (build_order(source, bot) if all_versions else build_order(source, bot)[-1:])
    ]
    if not snapshots:
        raise click.ClickException(f"no snapshots to publish in {settings.store_dir}")
    topics = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix)
    describe_cluster(settings.kafka)
    placement = PublishingPlacement(source, model_store(settings, topics))
    plane = ControlPlane(settings.kafka, topics.name("deployments"), placement, actor)
    started = time.perf_counter()
    with closing(plane):
        if stage is None:
            placed = placement.place_many(snapshots)
        else:
            newest = {bot: version for bot, version in snapshots}  # the last one per bot
            placed = [p for _, p in plane.deploy_many(sorted(newest.items()), stage)]
    sent = sum(p.sent for p in placed)
    click.echo(
        f"{len(placed)} snapshots on {placement.models.topics.models}: {sent} sent, "
        f"{len(placed) - sent} there already ({time.perf_counter() - started:.1f} s)"
    )
    if stage is not None:
        click.echo(f"deployed {len(placed)} bots on {stage}")
