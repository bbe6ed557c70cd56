"""Write results: one JSON per scenario, a Markdown summary with the headline table, plots."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt
import orjson


def write_json(out: Path, scenario: str, result: Mapping[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{scenario}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path


Row = tuple[str, str, str, str]
"""(metric, measured, target, verdict): the verdict is "met", "missed" or "-" (no target)."""


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


def headline_rows(results: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """The table every run prints; a target not reached is printed as missed."""
    rows: list[Row] = []
    rows += throughput_rows(results.get("throughput"))
    rows += latency_rows(results.get("latency"))
    rows += scaling_rows(results.get("scaling"))
    rows += density_rows(results.get("density"))
    rows += rebalance_rows(results.get("rebalance"))
    return rows


def throughput_rows(throughput: Mapping[str, Any] | None) -> list[Row]:
    if not throughput:
        return []
    systems = {s["system"]: s for s in throughput["systems"]}
    fleet = systems.get("fleetserve", {})
    rate = fleet.get("per_s", 0)
    load = fleet.get("load_average_after", [0])[0]
    rows: list[Row] = [
        (f"replies/s, 2 workers, {throughput['bots']:,} bots, Zipf (load avg {load:.1f})",
         f"{rate:,.0f}", ">= 50,000", verdict(rate >= 50_000)),
    ]  # fmt: skip
    for name, target, goal in (("faust", ">= 10", 10.0), ("relay", "-", None)):
        ratio = throughput["ratios"].get(f"fleetserve/{name}")
        if ratio is not None:
            ok = None if goal is None else ratio >= goal
            rows.append((f"fleetserve / {name}", f"{ratio:.2f}x", target, verdict(ok)))
    cost = fleet.get("cpu_us_per_output")
    if cost:
        rows += [
            ("CPU-us per reply, workers", f"{cost['system']:.1f}", "<= 25",
             verdict(cost["system"] <= 25)),
            ("CPU-us per reply, workers + broker", f"{cost['system_and_broker']:.1f}", "<= 35",
             verdict(cost["system_and_broker"] <= 35)),
            ("CPU-us per reply, load generator", f"{cost['load_generator']:.1f}", "-", "-"),
        ]  # fmt: skip
    relay = systems.get("relay", {}).get("cpu_us_per_output")
    if relay:
        rows.append(("CPU-us per message, relay + broker", f"{relay['system_and_broker']:.1f}",
                     "-", "-"))  # fmt: skip
    return rows


LATENCY_LIMITS = (("at-least-once/relay p50", 1.5), ("at-least-once/relay p99", 2.0),
                  ("exactly-once/relay p50", 3.0))  # fmt: skip


def latency_rows(latency: Mapping[str, Any] | None) -> list[Row]:
    """Every rate's percentiles, then the target ratios at the headline rate and at the
    highest rate the relay served without queueing. Where the relay queued, its ratios
    compare backlogs, so they carry no verdict."""
    if not latency:
        return []
    rows: list[Row] = []
    for point in latency.get("rates") or [latency]:
        for system in point["systems"]:
            lat = system["latency_ms"]
            queueing = " (queueing)" if system.get("queueing") else ""
            measured = f"{lat.get('p50', 0):.1f} / {lat.get('p99', 0):.1f} ms"
            cores = system.get("cores")
            if cores:  # a box near its cores measures contention, not the system
                measured += f"; box {cores['box']:.2f} cores, broker {cores['broker']:.2f}"
            rows.append((f"latency p50 / p99, {system['system']}, "
                         f"{point['offered_per_s']:,.0f} q/s, two hops{queueing}",
                         measured, "-", "-"))  # fmt: skip
    queued = bool(latency.get("relay_queued_at_headline"))
    rows += ratio_rows(latency.get("ratios", {}), latency["offered_per_s"], judged=not queued,
                       why=" (relay queued: compares backlogs)" if queued else "")  # fmt: skip
    comparable = latency.get("comparable")
    if comparable and comparable["offered_per_s"] != latency["offered_per_s"]:
        rows += ratio_rows(comparable["ratios"], comparable["offered_per_s"], judged=True,
                           why=" (highest rate the relay served without queueing)")  # fmt: skip
    return rows


def ratio_rows(ratios: Mapping[str, float | None], offered: float, judged: bool, why: str
               ) -> list[Row]:  # fmt: skip
    rows: list[Row] = []
    for name, limit in LATENCY_LIMITS:
        ratio = ratios.get(name)
        if ratio is not None:
            rows.append((f"latency {name}, {offered:,.0f} q/s{why}", f"{ratio:.2f}x",
                         f"<= {limit}x", verdict(ratio <= limit) if judged else "-"))  # fmt: skip
    return rows


def scaling_rows(scaling: Mapping[str, Any] | None) -> list[Row]:
    if not scaling:
        return []
    return [
        (f"CPU per reply, {what}", f"{ratio:.2f}x", "<= 2x", verdict(ratio <= 2))
        for what, ratio in scaling["cost_ratio_most_over_fewest_active"].items()
    ]


def density_rows(density: Mapping[str, Any] | None) -> list[Row]:
    if not density:
        return []
    variants = {v["variant"]: v for v in density["variants"]}
    rows: list[Row] = []
    fits = variants.get("fits")
    if fits:
        peak = max(fits["rss"]["peak_bytes"], default=0)
        rows.append((f"RSS, {fits['bots']:,} bots resident in one worker", f"{peak / 1e9:.2f} GB",
                     "<= 3 GB", verdict(0 < peak <= 3e9)))  # fmt: skip
        cold = fits["cache"]["cold_load_ms"]
        p99 = cold.get("p99")
        measured = f"{cold.get('p50') or 0:.1f} / {p99 or 0:.1f} ms"
        rows.append(("cold load p50 / p99 (histogram estimate)", measured, "p99 <= 10 ms",
                     verdict(None if p99 is None else p99 <= 10)))  # fmt: skip
    churn = variants.get("churn")
    if churn:
        cache = churn["cache"]
        measured = f"{cache['hit_rate']:.0%} / {cache['evictions_per_s']:,.0f}"
        what = f"churn: {churn['model_memory']}/worker, hit rate / evictions/s"
        rows.append((what, measured, "-", verdict(None)))
        rows.append(("churn: replies/s", f"{churn['replies_per_s']:,.0f}", "-", verdict(None)))
    return rows


def rebalance_rows(rebalance: Mapping[str, Any] | None) -> list[Row]:
    if not rebalance:
        return []
    outcomes = rebalance["outcomes"]
    exact = outcomes["unanswered"] == 0 and outcomes["duplicated"] == 0
    rows: list[Row] = [("rebalance: unanswered / duplicated",
                        f"{outcomes['unanswered']} / {outcomes['duplicated']}", "0 / 0",
                        verdict(exact))]  # fmt: skip
    for event in rebalance["events"]:
        pause = f"{event['max_partition_gap_ms'] / 1000:.1f} s"
        what = f"rebalance: {event['event']} pause of moved partitions"
        rows.append((what, pause, "-", verdict(None)))
    return rows


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| metric | measured | target | verdict |", "| --- | --- | --- | --- |"]
    lines += [f"| {metric} | {value} | {target} | {met} |" for metric, value, target, met in rows]
    return "\n".join(lines) + "\n"


def throughput_plot(out: Path, throughput: Mapping[str, Any]) -> Path:
    systems = throughput["systems"]
    names = [s["system"] for s in systems]
    rates = [s["per_s"] for s in systems]
    figure, axis = plt.subplots(figsize=(6, 3.2))
    bars = axis.barh(
        names, rates, color=["#2b7bba" if n == "fleetserve" else "#999999" for n in names]
    )
    axis.bar_label(bars, labels=[f"{r:,.0f}/s" for r in rates], padding=3, fontsize=8)
    axis.set_xlabel("outputs per second (same queries, same machine, broker included)")
    axis.set_title(f"Throughput, {throughput['bots']:,} bots, Zipf s={throughput['zipf_s']}")
    axis.invert_yaxis()
    axis.set_xlim(0, max(rates or [1]) * 1.25)
    figure.tight_layout()
    path = out / "throughput.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_summary(
    out: Path, results: Mapping[str, Mapping[str, Any]], machine: Mapping[str, Any], quick: bool
) -> Path:
    rows = headline_rows(results)
    text = [
        f"# fleetserve bench{' --quick' if quick else ''}\n",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
        f"{machine['broker']}.\n",
        "Load average (1, 5, 15 min) when this summary was written: "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
        + " (other jobs share these 2 cores; CPU-us figures come from per-process CPU"
        " time and do not count them).\n",
        markdown_table(rows),
    ]
    for plot in ("throughput", "scaling"):
        if plot in results and (out / f"{plot}.png").exists():
            text.append(f"\n![{plot}]({plot}.png)\n")
    path = out / "summary.md"
    path.write_text("\n".join(text))
    return path
