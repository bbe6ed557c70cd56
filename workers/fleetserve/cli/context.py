"""The settings object travels through click's context."""

from __future__ import annotations

import click

from fleetserve.config.settings import Settings

pass_settings = click.make_pass_decorator(Settings)
