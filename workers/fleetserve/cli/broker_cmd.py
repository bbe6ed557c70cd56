"""`fleetserve broker`: the embedded Tansu broker in the foreground."""

from __future__ import annotations

import logging

import click

from fleetserve.broker.embedded import EmbeddedBroker
from fleetserve.cli.lifecycle import ShutdownRequested, shutdown_on_signals
from fleetserve.errors import BrokerStartError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9092


def port_option(default: int = DEFAULT_PORT) -> click.Option:
    return click.Option(
        ["--port"],
        type=click.IntRange(0, 65535),
        default=default,
        show_default=True,
        help="Loopback port for the broker; 0 picks a free one.",
    )


def run_until_shutdown(broker: EmbeddedBroker) -> None:
    """Block while the broker runs; a broker that dies on its own is an error."""
    try:
        status = broker.wait()
    except ShutdownRequested as request:
        logger.info("%s received; stopping the broker", request)
        return
    raise BrokerStartError(
        f"the embedded broker exited unexpectedly with status {status}; "
        f"its log ({broker.log_path}) ends with:\n{broker.log_tail()}"
    )


@click.command(params=[port_option()])
def broker(port: int) -> None:
    """Run the embedded Tansu broker (memory only) until SIGINT/SIGTERM."""
    embedded = EmbeddedBroker(port=port or None)
    with shutdown_on_signals():
        try:
            embedded.start()
            click.echo(f"fleetserve broker ready: bootstrap {embedded.bootstrap_servers}")
            click.echo(f"  export FLEETSERVE_BOOTSTRAP={embedded.bootstrap_servers}")
            run_until_shutdown(embedded)
        except ShutdownRequested as request:
            logger.info("%s received during start-up; stopping", request)
        finally:
            status = embedded.stop()
    if status is not None and status < 0:  # EmbeddedBroker.stop: it waited for clients
        click.echo("fleetserve broker stopped (killed while clients were still connected)")
    else:
        click.echo(f"fleetserve broker stopped (status {status})")
