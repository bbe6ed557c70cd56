"""`fleetserve up`: the whole local stack on the embedded default."""

from __future__ import annotations

import logging

import click

from fleetserve.broker.embedded import EmbeddedBroker
from fleetserve.cli.broker_cmd import port_option, run_until_shutdown
from fleetserve.cli.context import pass_settings
from fleetserve.cli.lifecycle import ShutdownRequested, shutdown_on_signals
from fleetserve.cli.topics_cmd import echo_apply_report
from fleetserve.config.settings import KafkaSettings, Settings
from fleetserve.kafka.clients import admin_client
from fleetserve.topics.apply import apply_topics
from fleetserve.topics.loader import load_topics

logger = logging.getLogger(__name__)


@click.command(params=[port_option()])
@pass_settings
def up(settings: Settings, port: int) -> None:
    """Start the local stack: embedded broker plus every declared topic, until Ctrl-C."""
    declared = load_topics(settings.topic_file, settings.topic_env, settings.topic_prefix)
    embedded = EmbeddedBroker(port=port or None)
    with shutdown_on_signals():
        try:
            embedded.start()
            # The embedded broker is plain TCP on loopback: no SASL/TLS settings apply to it.
            local = KafkaSettings(embedded.bootstrap_servers)
            report = apply_topics(admin_client(local), declared)
            click.echo(f"fleetserve is up: bootstrap {embedded.bootstrap_servers}")
            for role, spec in declared.topics.items():
                click.echo(f"  {role:<13} {spec.name} ({spec.partitions} partitions)")
            echo_apply_report(report, embedded.bootstrap_servers, declared.env)
            click.echo(f"  export FLEETSERVE_BOOTSTRAP={embedded.bootstrap_servers}")
            click.echo("Press Ctrl-C to stop.")
            run_until_shutdown(embedded)
        except ShutdownRequested as request:
            logger.info("%s received during start-up; stopping", request)
        finally:
            embedded.stop()
    click.echo("fleetserve stopped")
