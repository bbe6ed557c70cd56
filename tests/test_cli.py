"""The command line: every command is listed with a description, and none is a stub."""

from __future__ import annotations

import click
from click.testing import CliRunner

from fleetserve.cli.main import cli

EXPECTED_COMMANDS = {
    "up",
    "bench",
    "dlq",
    "broker",
    "topics",
    "config",
    "validate",
    "bots",
    "build",
    "eval",
    "deploy",
    "promote",
    "rollback",
    "deployments",
    "publish",
    "gc",
    "worker",
    "demo",
    "ask",
    "replies",
    "shadow-report",
    "monitor",
    "relabel",
    "clean",
}


def walk(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        found[f"{prefix}{name}"] = command
        if isinstance(command, click.Group):
            found.update(walk(command, f"{prefix}{name} "))
    return found


def test_help_lists_every_command_with_a_description() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert set(cli.commands) == EXPECTED_COMMANDS
    for name, command in cli.commands.items():
        summary = command.get_short_help_str(limit=200)
        assert summary, f"{name} has no one-line description"
        assert name in result.output
        assert summary[:30] in result.output


def test_every_subcommand_has_help_and_is_not_a_placeholder() -> None:
    for path, command in walk(cli).items():
        help_text = command.help or ""
        assert help_text.strip(), f"`fleetserve {path}` has no help"
        lowered = help_text.lower()
        assert "not implemented" not in lowered, path
        assert "todo" not in lowered, path
        result = CliRunner().invoke(cli, [*path.split(), "--help"])
        assert result.exit_code == 0, (path, result.output)


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert "fleetserve, version" in result.output
