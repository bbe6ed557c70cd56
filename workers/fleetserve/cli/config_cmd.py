"""`fleetserve config`: inspect the effective settings."""

from __future__ import annotations

import click
import orjson

from fleetserve.cli.context import pass_settings
from fleetserve.config.settings import Settings


@click.group()
def config() -> None:
    """Inspect the effective settings."""


@config.command("show")
@pass_settings
def show(settings: Settings) -> None:
    """Print the merged settings (flags > env > file) with secrets masked."""
    click.echo(orjson.dumps(settings.masked(), option=orjson.OPT_INDENT_2).decode())
