"""`fleetserve bots make-fleet` and `fleetserve bots check`, through click."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner, Result

from fleetserve.cli.bots_cmd import bots
from fleetserve.cli.main import FleetserveGroup

GOOD = "text,intent\nhi,greet\nhello,greet\nbye,leave\nciao,leave\n"


def run(*args: str) -> Result:
    # The real top-level group, minus settings: it turns fleetserve errors into exit codes.
    app = FleetserveGroup("fleetserve")
    app.add_command(bots)
    return CliRunner().invoke(app, ["bots", *args])


def test_make_fleet_writes_the_fleet_and_prints_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "fleet"
    result = run("make-fleet", "40", "--seed", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "fleet.json").is_file()
    assert len(list(out.glob("*.jsonl"))) == 40
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["kind", "language", "bots", "intents", "utterances", "out_of_scope"]
    assert any(line.startswith("clinc150/domain ") and " 10 " in line for line in lines)
    assert any(line.startswith("parakqc_ko/subset") for line in lines)
    assert any(line.split()[:2] == ["total", "40"] for line in lines)
    assert f"wrote 40 bots to {out} (seed 3; 41 files written" in result.stdout
    assert "CC BY-SA 4.0" in result.stdout

    again = run("make-fleet", "40", "--seed", "3", "--out", str(out))
    assert "0 files written, 41 unchanged" in again.stdout


def test_make_fleet_needs_the_datasets(tmp_path: Path) -> None:
    result = run("make-fleet", "5", "--out", str(tmp_path / "f"), "--data", str(tmp_path))
    assert result.exit_code == 2
    assert "fleetserve: error:" in result.stderr
    assert "clinc150/train.jsonl is missing" in result.stderr


def test_make_fleet_refuses_zero_bots(tmp_path: Path) -> None:
    assert run("make-fleet", "0", "--out", str(tmp_path / "f")).exit_code == 2


def test_check_passes_a_fleet(tmp_path: Path) -> None:
    out = tmp_path / "fleet"
    assert run("make-fleet", "25", "--out", str(out)).exit_code == 0
    result = run("check", str(out), "--verbose")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "ok (25 bots)"
    assert "total" in result.stdout


def test_check_reports_every_bad_bot_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "good.csv").write_text(GOOD)
    (tmp_path / "dupes.csv").write_text(GOOD + "hi,greet\n")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "thin.csv").write_text(GOOD + "thanks,thank\n")
    result = run("check", str(tmp_path))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"empty: empty_file: {tmp_path / 'empty.jsonl'}: no utterances in the file",
        f"thin: single_utterance_intent: {tmp_path / 'thin.csv'}:6: every intent needs at "
        "least 2 distinct utterances; only one for 'thank' (line 6)",
    ]
    assert result.stderr == "2 of 4 bots invalid\n"


def test_check_counts_dropped_duplicates(tmp_path: Path) -> None:
    (tmp_path / "dupes.csv").write_text(GOOD + "hi,greet\nHI,greet\n")
    result = run("check", str(tmp_path / "dupes.csv"))
    assert result.exit_code == 0
    assert result.stdout == "ok (1 bot, 2 duplicate utterances dropped)\n"


def test_check_of_a_folder_without_bots_is_an_error(tmp_path: Path) -> None:
    result = run("check", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.startswith("fleetserve: error: ")
    assert "no bot files" in result.stderr


def test_the_group_is_a_click_group() -> None:
    assert isinstance(bots, click.Group)
    assert set(bots.commands) == {"make-fleet", "check"}
