"""The command line: every command is listed with a description, and none is a stub."""

from __future__ import annotations

import subprocess
import sys

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
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, f"`fleetserve {prefix}{name}` is listed but does not load"
        found[f"{prefix}{name}"] = command
        if isinstance(command, click.Group):
            found.update(walk(command, f"{prefix}{name} "))
    return found


def test_help_lists_every_command_with_a_description() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    commands = walk(cli)
    assert {name for name in commands if " " not in name} == EXPECTED_COMMANDS
    for name, command in commands.items():
        if " " in name:
            continue
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


def test_the_command_line_imports_only_what_the_command_needs() -> None:
    # A worker restart (the crash-loop breaker counts on those) and `ask` must not pay for
    # the build's and the data loop's libraries.
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from fleetserve.cli.main import cli\n"
        "assert CliRunner().invoke(cli, ['worker', '--help']).exit_code == 0\n"
        "import fleetserve.serving.worker, fleetserve.client.client\n"
        "print(' '.join(sorted(m for m in HEAVY if m in sys.modules)))\n"
    )
    # onnx stays: the cache's guard parses each model before onnxruntime sees it.
    heavy = ["numba", "optuna", "sklearn", "faust", "fleetserve.models.train"]
    result = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {heavy!r}\n{script}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.split() == []
