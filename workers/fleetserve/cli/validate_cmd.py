"""`fleetserve validate`: check JSON or JSONL messages against a contract, offline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import click
import orjson

from fleetserve.cli.exit_codes import FAILURE
from fleetserve.contracts import codec
from fleetserve.contracts.schemas import MessageKind
from fleetserve.errors import ContractError

FORMATS: Final = ("auto", "json", "jsonl")
_JSONL_SUFFIXES: Final = (".jsonl", ".ndjson")

Record = tuple[int, bytes]
"""A record's 1-based line number and its raw bytes."""


@click.command("validate")
@click.argument("kind", type=click.Choice([kind.value for kind in MessageKind]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="json: FILE is one message; jsonl: one message per line. "
    "auto: by suffix (.json, .jsonl, .ndjson), else json if FILE parses as a whole.",
)
@click.pass_context
def validate(ctx: click.Context, kind: str, file: str, fmt: str) -> None:
    """Check JSON or JSONL messages against a fleetserve contract.

    KIND is the contract; FILE is a path, or - for stdin. Prints `ok` when every
    record is valid (exit 0), else one line per bad record,
    `FILE:LINE: REASON: MESSAGE` (exit 1). Blank lines are skipped.
    """
    with click.open_file(file, "rb") as stream:
        data = stream.read()
    name = "<stdin>" if file == "-" else file
    records = list(split_records(data, choose_format(fmt, file, data)))
    if not records:
        click.echo(f"{name}: no records", err=True)
        ctx.exit(FAILURE)
    bad = 0
    for line, raw in records:
        problem = check(MessageKind(kind), raw)
        if problem is not None:
            bad += 1
            click.echo(f"{name}:{line}: {problem}")
    if bad:
        click.echo(f"{bad} of {len(records)} records invalid", err=True)
        ctx.exit(FAILURE)
    click.echo(f"ok ({len(records)} {kind} record{'s' if len(records) > 1 else ''})")


def check(kind: MessageKind, raw: bytes) -> str | None:
    """``REASON: MESSAGE`` for an invalid record, None for a valid one."""
    try:
        codec.decode(kind, raw)
    except ContractError as exc:
        return f"{exc.reason}: {exc}"
    return None


def choose_format(fmt: str, file: str, data: bytes) -> str:
    """Resolve ``auto`` to ``json`` or ``jsonl``."""
    if fmt != "auto":
        return fmt
    if file.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if file.endswith(".json"):
        return "json"
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return "jsonl"
    return "json"


def split_records(data: bytes, fmt: str) -> Iterator[Record]:
    """The records of ``data``; a JSON document is one record on line 1."""
    if fmt == "json":
        if data.strip():
            yield 1, data
        return
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.strip():
            yield number, line
