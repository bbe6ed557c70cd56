"""The `fleetserve` command. The only place that configures logging and parses settings."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Final

import click

from fleetserve.cli.exit_codes import exit_code_for
from fleetserve.config.settings import Stage
from fleetserve.config.sources import build_settings
from fleetserve.core.facts import VERSION
from fleetserve.errors import FleetserveError

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


# Each command's module is imported only when that command runs: `fleetserve worker` and
# `fleetserve ask` must not pay for numba, onnx, optuna or scikit-learn, which only the
# build and the data loop use (importing every command took about 1 s of CPU).
COMMANDS: Final[Mapping[str, str]] = {
    "up": "fleetserve.cli.up_cmd:up",
    "demo": "fleetserve.cli.demo_cmd:demo",
    "broker": "fleetserve.cli.broker_cmd:broker",
    "topics": "fleetserve.cli.topics_cmd:topics",
    "bots": "fleetserve.cli.bots_cmd:bots",
    "build": "fleetserve.cli.build_cmd:build",
    "eval": "fleetserve.cli.eval_cmd:eval_command",
    "deploy": "fleetserve.cli.deploy_cmd:deploy",
    "promote": "fleetserve.cli.deploy_cmd:promote",
    "rollback": "fleetserve.cli.deploy_cmd:rollback",
    "deployments": "fleetserve.cli.deploy_cmd:deployments",
    "publish": "fleetserve.cli.publish_cmd:publish",
    "gc": "fleetserve.cli.gc_cmd:gc",
    "config": "fleetserve.cli.config_cmd:config",
    "validate": "fleetserve.cli.validate_cmd:validate",
    "ask": "fleetserve.cli.ask_cmd:ask",
    "replies": "fleetserve.cli.replies_cmd:replies",
    "shadow-report": "fleetserve.cli.shadow_cmd:shadow_report_command",
    "worker": "fleetserve.cli.worker_cmd:worker",
    "dlq": "fleetserve.cli.dlq_cmd:dlq",
    "monitor": "fleetserve.cli.monitor_cmd:monitor",
    "relabel": "fleetserve.cli.relabel_cmd:relabel",
    "clean": "fleetserve.cli.clean_cmd:clean",
}
PLUGIN_GROUP: Final = "fleetserve.commands"


class FleetserveGroup(click.Group):
    """Turns fleetserve's own errors into one clear line and a documented exit code.

    ``lazy`` names commands by ``module:attribute``, imported on first use.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 (click.Group API)
        return sorted({*self.commands, *self.lazy})

    def get_command(
        self,
        ctx: click.Context,  # noqa: ARG002 (click.Group API)
        cmd_name: str,
    ) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(_load_command(self.lazy[cmd_name]), cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FleetserveError as exc:
            click.echo(f"fleetserve: error: {exc}", err=True)
            sys.exit(exit_code_for(exc))


@click.group(
    cls=FleetserveGroup,
    lazy={**COMMANDS, **{entry.name: entry.value for entry in entry_points(group=PLUGIN_GROUP)}},
    context_settings={"help_option_names": ["-h", "--help"]},
)
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


def _load_command(target: str) -> click.Command:
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


@click.command(name="bench", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_missing(args: tuple[str, ...]) -> None:
    """Benchmarks end to end (needs the harness: pip install -e ./bench)."""
    raise click.ClickException(
        "fleetserve bench needs the benchmark harness, which ships beside fleetserve and not "
        f"inside it: pip install -e ./bench (from a checkout); not run: bench {' '.join(args)}"
    )


if "bench" not in cli.lazy:  # the harness's entry point, when installed, wins
    cli.add_command(bench_missing)
