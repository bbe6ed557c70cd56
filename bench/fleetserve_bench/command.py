"""`fleetserve bench`: throughput and latency against the relay, faust and no-cache baselines.

Registered with fleetserve's CLI through the ``fleetserve.commands`` entry point
(bench/pyproject.toml), so the runtime package never imports the harness.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from fleetserve.cli.context import pass_settings
from fleetserve.config.settings import Settings


@click.command()
@click.option("--quick", is_flag=True, help="Small sizes for a smoke run (under 60 s).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench/results"),
    show_default=True,
    help="Folder for <scenario>.json, summary.md and the plots.",
)
@click.option(
    "--skip-density",
    is_flag=True,
    help="Full runs: leave out the 10,000-bot density world and the 10,000-active-bot "
    "scaling point (that fleet takes about 12 minutes to build the first time).",
)
@pass_settings
def bench(_settings: Settings, /, quick: bool, out: Path, skip_density: bool) -> None:
    """Run the benchmark scenarios end to end on an embedded broker and print the headline.

    Throughput: the same Zipf-distributed queries answered by a 2-worker fleetserve group,
    a confluent-kafka relay (the physical limit), fleetserve without its model cache and
    a faust-streaming agent answering one message at a time. Latency: one paced producer
    for the relay (two hops) and fleetserve, send-to-arrival at a reader. Full runs add
    the cost per reply as the active bots and the pass size vary, rebalance and density.
    """
    # Imported here: matplotlib and the scenarios are heavy, and `fleetserve --help` loads
    # this module through its entry point.
    from fleetserve_bench import report  # noqa: PLC0415
    from fleetserve_bench.run import BenchPlan, run_bench  # noqa: PLC0415

    plan = BenchPlan.quick() if quick else BenchPlan.full()
    if skip_density:
        plan = dataclasses.replace(plan, density_bots=0)
    results = run_bench(plan, out, quick, click.echo)
    click.echo(report.markdown_table(report.headline_rows(results)))
    click.echo(f"results in {out}/")
