"""The `fleetserve` command. The only place that configures logging and parses settings."""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click

from fleetserve.cli.ask_cmd import ask
from fleetserve.cli.bots_cmd import bots
from fleetserve.cli.broker_cmd import broker
from fleetserve.cli.build_cmd import build
from fleetserve.cli.clean_cmd import clean
from fleetserve.cli.config_cmd import config
from fleetserve.cli.demo_cmd import demo
from fleetserve.cli.deploy_cmd import deploy, deployments, promote, rollback
from fleetserve.cli.dlq_cmd import dlq
from fleetserve.cli.eval_cmd import eval_command
from fleetserve.cli.exit_codes import exit_code_for
from fleetserve.cli.gc_cmd import gc
from fleetserve.cli.monitor_cmd import monitor
from fleetserve.cli.publish_cmd import publish
from fleetserve.cli.relabel_cmd import relabel
from fleetserve.cli.replies_cmd import replies
from fleetserve.cli.shadow_cmd import shadow_report_command
from fleetserve.cli.topics_cmd import topics
from fleetserve.cli.up_cmd import up
from fleetserve.cli.validate_cmd import validate
from fleetserve.cli.worker_cmd import worker
from fleetserve.config.settings import Stage
from fleetserve.config.sources import build_settings
from fleetserve.core.facts import VERSION
from fleetserve.errors import FleetserveError

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class FleetserveGroup(click.Group):
    """Turns fleetserve's own errors into one clear line and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FleetserveError as exc:
            click.echo(f"fleetserve: error: {exc}", err=True)
            sys.exit(exit_code_for(exc))


@click.group(cls=FleetserveGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, prog_name="fleetserve")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (env FLEETSERVE_CONFIG).",
)
@click.option(
    "--bootstrap", help="Kafka bootstrap servers host:port[,...] (env FLEETSERVE_BOOTSTRAP)."
)
@click.option(
    "--stage",
    type=click.Choice([s.value for s in Stage]),
    help="Deployment stage this process serves (env FLEETSERVE_STAGE).",
)
@click.option("--group", help="Consumer group id (env FLEETSERVE_GROUP).")
@click.option(
    "--worker-id",
    help="This process's id in its group; keep it stable across restarts "
    "(env FLEETSERVE_WORKER_ID; default host-pid).",
)
@click.option(
    "--topic-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Topic file; default: the bundled topics/topics.yaml (env FLEETSERVE_TOPIC_FILE).",
)
@click.option("--topic-env", help="Environment in the topic file, e.g. local or prod.")
@click.option("--topic-prefix", help="Prefix for every topic name (env FLEETSERVE_TOPIC_PREFIX).")
@click.option(
    "--kafka-option",
    "kafka_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any librdkafka property, repeatable (env FLEETSERVE_KAFKA_<KEY>).",
)
@click.option(
    "--store",
    metavar="DIR|kafka",
    help="Where model snapshots are: a directory (builds; single machine) or `kafka`, the "
    "models topic (workers on any machine) (env FLEETSERVE_STORE; default ./artifacts).",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Log level (env FLEETSERVE_LOG_LEVEL).",
)
@click.pass_context
def cli(ctx: click.Context, /, config_file: Path | None, **flags: Any) -> None:
    """fleetserve: per-chatbot intent models served behind Apache Kafka."""
    settings = build_settings(flags=flags, config_file=config_file)
    configure_logging(settings.log_level)
    ctx.obj = settings


def quiet_third_party_root_records(record: logging.LogRecord) -> bool:
    """onnxruntime's quantizer logs through the root logger, once per bot at INFO."""
    return not (
        record.name == "root"
        and record.levelno < logging.WARNING
        and "onnxruntime" in record.pathname
    )


def configure_logging(level: str) -> None:
    # A no-op when the host (pytest, an embedding app) already configured logging.
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(quiet_third_party_root_records)
    # librdkafka's connection chatter is debug detail unless it is an error.
    logging.getLogger("fleetserve.kafka.clients").setLevel(
        max(logging.WARNING, logging.getLevelName(level))
    )


cli.add_command(up)
cli.add_command(demo)
cli.add_command(broker)
cli.add_command(topics)
cli.add_command(bots)
cli.add_command(build)
cli.add_command(eval_command)
cli.add_command(deploy)
cli.add_command(promote)
cli.add_command(rollback)
cli.add_command(deployments)
cli.add_command(publish)
cli.add_command(gc)
cli.add_command(config)
cli.add_command(validate)
cli.add_command(ask)
cli.add_command(replies)
cli.add_command(shadow_report_command)
cli.add_command(worker)
cli.add_command(dlq)
cli.add_command(monitor)
cli.add_command(relabel)
cli.add_command(clean)


def add_plugin_commands(group: click.Group) -> None:
    """Commands other distributions add (``fleetserve.commands`` entry points): today the
    benchmark harness's ``fleetserve bench``, when ``bench/`` is installed beside this."""
    for entry in entry_points(group="fleetserve.commands"):
        command = entry.load()
        if isinstance(command, click.Command):
            group.add_command(command, entry.name)


@click.command(name="bench", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_missing(args: tuple[str, ...]) -> None:
    """Benchmarks end to end (needs the harness: pip install -e ./bench)."""
    raise click.ClickException(
        "fleetserve bench needs the benchmark harness, which ships beside fleetserve and not "
        f"inside it: pip install -e ./bench (from a checkout); not run: bench {' '.join(args)}"
    )


cli.add_command(bench_missing)
add_plugin_commands(cli)
