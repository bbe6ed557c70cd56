"""`fleetserve validate`: offline checks of JSON and JSONL files against a contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from fleetserve.cli.validate_cmd import validate
from fleetserve.contracts.schemas import MessageKind, schema_dir

EXAMPLES = schema_dir().joinpath("examples")


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(validate, list(args), input=stdin)


def example(kind: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(EXAMPLES.joinpath(kind).joinpath(name).read_bytes())
    return loaded


def query(**changes: Any) -> dict[str, Any]:
    return {**example("query", "valid-minimal.json"), **changes}


def jsonl(*records: dict[str, Any] | bytes) -> bytes:
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    return b"\n".join(lines) + b"\n"


def test_a_valid_json_file_prints_ok(tmp_path: Path) -> None:
    path = tmp_path / "reply.json"
    path.write_bytes(
        EXAMPLES.joinpath("reply").joinpath("valid-answer-with-trace.json").read_bytes()
    )
    result = run("reply", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok (1 reply record)\n"


def test_a_valid_jsonl_file_prints_ok(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_bytes(jsonl(query(), query(request_id="r-2", stage="beta")))
    result = run("query", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok (2 query records)\n"


def test_every_bad_line_is_reported_with_its_number_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_bytes(
        jsonl(
            query(),
            b"",
            b'{"version": 1, "bot_id": ',
            query(bot_id="Bank"),
            query(version=2),
            query(ttl_ms=100, deadline_ms=1754900001000),
            b"[1, 2]",
        )
    )
    result = run("query", str(path))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split(": ")[0:2] for line in lines] == [
        [f"{path}:3", "invalid_json"],
        [f"{path}:4", "schema_violation"],
        [f"{path}:5", "unsupported_version"],
        [f"{path}:6", "schema_violation"],
        [f"{path}:7", "invalid_json"],
    ]
    assert (
        lines[1]
        == f"{path}:4: schema_violation: bot_id: must match pattern ^[a-z0-9][a-z0-9_-]{{0,63}}$"
    )
    assert "deadline_ms, ttl_ms:" in lines[3]
    assert "5 of 6 records invalid" in result.stderr


def test_stdin_jsonl(tmp_path: Path) -> None:
    del tmp_path
    result = run("query", "-", stdin=jsonl(query(), query(text="")))
    assert result.exit_code == 1
    assert (
        result.stdout
        == "<stdin>:2: schema_violation: text: must be longer than or equal to 1 characters\n"
    )


def test_stdin_pretty_printed_document_is_one_record() -> None:
    document = orjson.dumps(query(), option=orjson.OPT_INDENT_2)
    result = run("query", "-", stdin=document)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok")


def test_format_option_overrides_the_suffix(tmp_path: Path) -> None:
    path = tmp_path / "batch.txt"
    path.write_bytes(jsonl(query(), query(request_id="r-2")))
    assert run("query", "--format", "jsonl", str(path)).exit_code == 0
    as_one_document = run("query", "--format", "json", str(path))
    assert as_one_document.exit_code == 1
    assert as_one_document.stdout.startswith(f"{path}:1: invalid_json: ")


def test_a_broken_json_document_is_one_error_on_line_1(tmp_path: Path) -> None:
    path = tmp_path / "deployment.json"
    path.write_bytes(b'{\n  "version": 1,\n  "bot_id": "x",\n')
    result = run("deployment", str(path))
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.startswith(f"{path}:1: invalid_json: ")


def test_non_utf8_input_is_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"text": "caf\xe9"}\n')
    result = run("query", str(path))
    assert result.exit_code == 1
    assert f"{path}:1: invalid_json: " in result.stdout


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_no_records_is_a_failure(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    result = run("query", str(path))
    assert result.exit_code == 1
    assert "no records" in result.stderr


def test_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_bytes(orjson.dumps(query()))
    result = run("queries", str(path))
    assert result.exit_code == 2
    assert "dead_letter" in result.stderr


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run("query", str(tmp_path / "nope.json"))
    assert result.exit_code == 2


@pytest.mark.parametrize("kind", [k.value for k in MessageKind])
def test_the_packaged_examples(kind: str) -> None:
    for entry in EXAMPLES.joinpath(kind).iterdir():
        if entry.name == "expectations.json":
            continue
        result = run(kind, "-", stdin=entry.read_bytes())
        expected = 0 if entry.name.startswith("valid-") else 1
        assert result.exit_code == expected, (entry.name, result.output)


def test_help_describes_the_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "Check JSON or JSONL messages against a fleetserve contract." in result.stdout
    assert "query|reply|dead_letter|deployment" in result.stdout
