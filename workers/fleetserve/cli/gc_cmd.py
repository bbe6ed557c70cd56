"""`fleetserve gc`: tombstone the models topic's snapshots that nothing can serve any more."""

from __future__ import annotations

from contextlib import closing

import click

from fleetserve.cli.context import pass_settings
from fleetserve.cli.tables import format_table
from fleetserve.config.settings import Settings
from fleetserve.deploy.log import read_deployments
from fleetserve.kafka.probe import describe_cluster
from fleetserve.store.retention import Verdict, plan
from fleetserve.store.select import model_store
from fleetserve.topics.loader import load_topics


@click.command()
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    required=True,
    help="Versions to keep per bot besides those a stage serves or can roll back to.",
)
@click.option("--bot", "bots", multiple=True, help="Only these bots (repeatable).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--verbose", "-v", is_flag=True, help="List kept snapshots too.")
@pass_settings
def gc(settings: Settings, keep: int, bots: tuple[str, ...], dry_run: bool, verbose: bool) -> None:
    """Write tombstones for snapshots on the models topic that no stage serves or can roll
    back to, and that are older than each bot's newest KEEP versions.

    Compaction then removes their bytes. A version any stage's rollback history names is
    never removed. Do not run it while a deploy of an old version is in flight: that
    version is not named by any record yet.
    """
    topics = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix)
    describe_cluster(settings.kafka)
    with closing(model_store(settings, topics)) as models:
        models.prepare()  # the index is read while the deployments are
        deployments = read_deployments(settings.kafka, topics.name("deployments"))
        entries = [e for e in models.index().entries() if not bots or e.bot_id in bots]
        verdicts = plan(entries, deployments, keep)
        doomed = [v.entry for v in verdicts if v.remove]
        if doomed and not dry_run:
            models.tombstone(doomed)
    shown = verdicts if verbose else [v for v in verdicts if v.remove]
    if shown:
        click.echo(format_table(["bot", "version", "bytes", "verdict", "why"], _rows(shown)))
    freed = sum(e.size_bytes for e in doomed)
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {len(doomed)} of {len(verdicts)} snapshots ({freed / 2**20:.1f} MiB) "
        f"from {models.topics.models}"
    )


def _rows(verdicts: list[Verdict]) -> list[dict[str, object]]:
    return [
        {
            "bot": v.entry.bot_id,
            "version": v.entry.version,
            "bytes": v.entry.size_bytes,
            "verdict": "remove" if v.remove else "keep",
            "why": v.why,
        }
        for v in verdicts
    ]
