"""`fleetserve eval`: a published model's accuracy on a labelled test file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from fleetserve.builder.evaluate import evaluate_snapshot, read_test_file, resolve
from fleetserve.cli.context import pass_settings
from fleetserve.cli.tables import format_table
from fleetserve.config.settings import Settings
from fleetserve.store.local import LocalDirectoryStore


@click.command("eval")
@click.argument("target")
@click.argument("testfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@pass_settings
def eval_command(settings: Settings, /, target: str, testfile: Path, as_json: bool) -> None:
    """Score TARGET (a bot id: its newest snapshot; BOT/VERSION; or a snapshot folder) on
    TESTFILE (JSONL or CSV like a bot file; out-of-scope rows measure the fallback).

    Reports accuracy, per-intent precision and recall, the most confused pairs and the
    fallback rate at the model's calibrated threshold, for the published model and for
    the fp32 model when the build kept it (`build --keep-fp32`).
    """
    result = evaluate_snapshot(
        resolve(target, LocalDirectoryStore(settings.store_dir)), read_test_file(testfile)
    )
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(render(result))


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['bot_id']} {result['version']} (published {result['published']}; "
        f"cross-validated accuracy at build {_pct(result['build_cv_accuracy'])})"
    ]
    for quantization, scores in result["results"].items():
        lines += [
            "",
            f"{quantization}: accuracy {_pct(scores['accuracy'])} on {scores['utterances']} "
            f"utterances; at threshold {scores['fallback_threshold']:.3f}: "
            f"{_pct(scores['accuracy_at_threshold'])} answered correctly, "
            f"{_pct(scores['in_scope_fallback_rate'])} of in-scope fall back, "
            f"oos recall {_pct(scores['oos_recall'])} ({scores['out_of_scope']} out-of-scope)",
        ]
        if scores["unknown_intents"]:
            lines.append(f"intents the model does not know: {', '.join(scores['unknown_intents'])}")
        rows = [
            {**r, "precision": _pct(r["precision"]), "recall": _pct(r["recall"])}
            for r in scores["per_intent"]
        ]
        lines += ["", format_table(["intent", "support", "precision", "recall"], rows)]
        if scores["confused_pairs"]:
            lines += ["", "most confused (true -> predicted):"]
            lines += [
                f"  {p['intent']} -> {p['predicted']}: {p['count']}"
                for p in scores["confused_pairs"]
            ]
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"
