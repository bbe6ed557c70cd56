"""`python -m fleetserve` runs the same command as the `fleetserve` script."""

from fleetserve.cli.main import cli

cli(prog_name="fleetserve")
