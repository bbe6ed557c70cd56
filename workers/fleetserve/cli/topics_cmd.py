"""`fleetserve topics`: make the cluster match the topic file, or show how it differs."""

from __future__ import annotations

from collections.abc import Mapping

import click
import orjson
from confluent_kafka.admin import AdminClient

from fleetserve.cli.context import pass_settings
from fleetserve.cli.tables import format_table
from fleetserve.config.settings import Settings
from fleetserve.errors import TopicDriftError
from fleetserve.kafka.clients import admin_client
from fleetserve.kafka.probe import describe_cluster
from fleetserve.topics.admin import observe_topics
from fleetserve.topics.apply import ApplyReport, apply_topics
from fleetserve.topics.loader import load_topics
from fleetserve.topics.plan import ObservedTopic, plan_topics
from fleetserve.topics.spec import TopicSet, TopicSpec

timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(0.5, 300),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the cluster before giving up.",
)


@click.group()
def topics() -> None:
    """Provision and inspect the topics declared in the topic file."""


def _declared_and_admin(settings: Settings, timeout: float) -> tuple[TopicSet, AdminClient]:
    """The topic file first (a bad file fails before any network call), then a live cluster."""
    declared = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix)
    describe_cluster(settings.kafka, timeout)
    return declared, admin_client(settings.kafka)


@topics.command("apply")
@timeout_option
@pass_settings
def apply(settings: Settings, timeout: float) -> None:
    """Create missing topics and report drift; running it again changes nothing."""
    declared, admin = _declared_and_admin(settings, timeout)
    report = apply_topics(admin, declared, timeout_s=timeout)
    echo_apply_report(report, settings.kafka.bootstrap_servers, declared.env)
    if report.drift:
        raise TopicDriftError(
            f"{len(report.drift)} setting(s) differ from the topic file; fleetserve does not "
            "repartition or reconfigure existing topics: fix them by hand or change the file"
        )


@topics.command("check")
@timeout_option
@pass_settings
def check(settings: Settings, timeout: float) -> None:
    """Report missing topics and drift without changing anything (exit 4 if any)."""
    declared, admin = _declared_and_admin(settings, timeout)
    plan = plan_topics(declared.by_name(), observe_topics(admin, timeout))
    for spec in plan.create:
        click.echo(f"missing  {spec.name}")
    for drift in plan.drift:
        click.echo(f"drift    {drift}")
    if plan.create or plan.drift:
        raise TopicDriftError(f"{len(plan.create)} missing, {len(plan.drift)} drifted")
    click.echo(f"in sync: {len(plan.unchanged)} topics")


@topics.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include topics not in the topic file.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per topic.")
@timeout_option
@pass_settings
def list_topics(settings: Settings, show_all: bool, as_json: bool, timeout: float) -> None:
    """Show the declared topics (and with --all every topic) as the cluster has them."""
    topic_set, admin = _declared_and_admin(settings, timeout)
    declared = topic_set.by_name()
    observed = observe_topics(admin, timeout)
    names = sorted(set(declared) | (set(observed) if show_all else set()))
    rows = [_row(name, declared, observed) for name in names]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    columns = ["name", "role", "status", "partitions", "replication", "cleanup", "retention_ms"]
    click.echo(format_table(columns, rows))


def _row(
    name: str, declared: Mapping[str, TopicSpec], observed: Mapping[str, ObservedTopic]
) -> dict[str, object]:
    spec = declared.get(name)
    actual = observed.get(name)
    role = spec.role if spec else "-"
    if actual is None:
        return {
            "name": name,
            "role": role,
            "status": "missing",
            "partitions": None,
            "replication": None,
            "cleanup": None,
            "retention_ms": None,
        }
    return {
        "name": name,
        "role": role,
        "status": "present" if spec else "undeclared",
        "partitions": actual.partitions,
        "replication": actual.replication_factor,
        "cleanup": actual.configs.get("cleanup.policy"),
        "retention_ms": actual.configs.get("retention.ms"),
    }


def echo_apply_report(report: ApplyReport, bootstrap: str, env: str) -> None:
    for name in report.created:
        click.echo(f"created    {name}")
    for name in report.unchanged:
        click.echo(f"unchanged  {name}")
    for drift in report.drift:
        click.echo(f"drift      {drift}")
    click.echo(
        f"topics apply ({env} @ {bootstrap}): {len(report.created)} created, "
        f"{len(report.unchanged)} unchanged, {len(report.drift)} drifted"
    )
