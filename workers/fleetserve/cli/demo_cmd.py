"""`fleetserve demo`: broker, demo bots, a worker group and real answers, then a clean stop."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from fleetserve.client.client import Outcome
from fleetserve.demo.run import Answer, DemoOptions, run_demo


@click.command()
@click.option("--bots", type=click.IntRange(12, 500), default=36, show_default=True)
@click.option("--workers", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option(
    "--questions",
    type=click.IntRange(1, 20),
    default=5,
    show_default=True,
    help="Questions per language (English and Korean).",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--keep-store",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build the snapshots here and keep them (default: a temporary folder).",
)
def demo(bots: int, workers: int, questions: int, seed: int, keep_store: Path | None) -> None:
    """Start a broker, build and deploy demo bots, run a worker group, ask, print, stop."""
    started = time.perf_counter()
    options = DemoOptions(bots, workers, questions, seed, keep_store)
    answers = run_demo(options, lambda line: click.echo(f"· {line}"))
    # A pipe reports 80 columns; the table needs more to stay readable.
    Console(width=max(Console().width, 140)).print(answer_table(answers))
    answered = sum(isinstance(a.outcome, Outcome) and a.outcome.reply is not None for a in answers)
    seconds = time.perf_counter() - started
    click.echo(f"{answered}/{len(answers)} answered; demo finished in {seconds:.1f} s")


def answer_table(answers: list[Answer]) -> Table:
    table = Table(
        title="fleetserve: held-out questions answered by real quantized models",
        caption="ms: round trip of each question asked alone on a connected client, after a "
        "warm-up round (client start-up and first model loads not included)",
    )
    table.add_column("bot", no_wrap=True)
    table.add_column("question", ratio=1)
    table.add_column("answer (✓ = the dataset's label)", ratio=1)
    for column in ("conf", "model", "worker", "ms"):  # ms: see the caption
        table.add_column(
            column, no_wrap=True, justify="right" if column in ("conf", "ms") else "left"
        )
    for answer in answers:
        table.add_row(answer.question.bot_id, answer.question.text, *_cells(answer))
    return table


def _cells(answer: Answer) -> tuple[str, ...]:
    outcome = answer.outcome
    expected = answer.question.expected_intent
    if not isinstance(outcome, Outcome):
        return ("no answer in time", "", "", "", "")
    reply = outcome.reply
    if reply is None:
        dead = outcome.dead_letter
        return (f"dead letter: {dead['reason'] if dead else '?'}", "", "", "", "")
    verdict = "✓" if reply["intent"] == expected else f"✗ (expected {expected})"
    said = reply["intent"]
    if reply["fallback"]:
        said = f"{said} (top: {reply['top_k'][0]['intent']}, under the bot's threshold)"
    return (
        f"{said} {verdict}",
        f"{reply['confidence']:.2f}",
        f"{reply['model']['version'][:8]} {reply['model']['quantization']}",
        reply["worker"]["id"],
        f"{outcome.latency_ms:.0f}",
    )
