"""Write results: one JSON per scenario, a Markdown summary with the headline table, plots."""

from __future__ import annotations

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


def headline_rows(results: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(metric, measured, target) rows for the table every run prints."""
    rows: list[tuple[str, str, str]] = []
    throughput = results.get("throughput")
    if throughput:
        systems = {s["system"]: s for s in throughput["systems"]}
        fleet = systems.get("fleetserve", {})
        rows.append(("replies/s, 2 workers", f"{fleet.get('per_s', 0):,.0f}", ">= 50,000"))
        for name, target in (("relay", ">= 0.5"), ("faust", ">= 10"), ("no-cache", "-")):
            ratio = throughput["ratios"].get(f"fleetserve/{name}")
            if ratio is not None:
                rows.append((f"fleetserve / {name}", f"{ratio:.2f}x", target))
        cost = fleet.get("cpu_s_per_million")
        if cost is not None:
            rows.append(("CPU-s per million replies (workers + broker)", f"{cost:,.0f}", "-"))
    latency = results.get("latency")
    if latency:
        lat = latency["systems"][0]["latency_ms"]
        offered = latency["offered_per_s"]
        rows.append(
            (f"latency p50 at {offered:,.0f} q/s", f"{lat.get('p50', 0):.1f} ms", "<= 3 ms")
        )
        rows.append(
            (f"latency p99 at {offered:,.0f} q/s", f"{lat.get('p99', 0):.1f} ms", "<= 15 ms")
        )
        rows.append((f"latency p99.9 at {offered:,.0f} q/s", f"{lat.get('p99_9', 0):.1f} ms", "-"))
    rows += density_rows(results.get("density"))
    rows += rebalance_rows(results.get("rebalance"))
    return rows


def density_rows(density: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    if not density:
        return []
    variants = {v["variant"]: v for v in density["variants"]}
    rows: list[tuple[str, str, str]] = []
    fits = variants.get("fits")
    if fits:
        peak = max(fits["rss"]["peak_bytes"], default=0)
        rows.append((f"RSS, {fits['bots']:,} bots resident in one worker", f"{peak / 1e9:.2f} GB",
                     "<= 3 GB"))  # fmt: skip
        cold = fits["cache"]["cold_load_ms"]
        measured = f"{cold.get('p50') or 0:.1f} / {cold.get('p99') or 0:.1f} ms"
        rows.append(("cold load p50 / p99 (histogram estimate)", measured, "p99 <= 10 ms"))
    churn = variants.get("churn")
    if churn:
        cache = churn["cache"]
        measured = f"{cache['hit_rate']:.0%} / {cache['evictions_per_s']:,.0f}"
        what = f"churn: {churn['model_memory']}/worker, hit rate / evictions/s"
        rows.append((what, measured, "-"))
        rows.append(("churn: replies/s", f"{churn['replies_per_s']:,.0f}", "-"))
    return rows


def rebalance_rows(rebalance: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    if not rebalance:
        return []
    outcomes = rebalance["outcomes"]
    rows = [("rebalance: unanswered / duplicated",
             f"{outcomes['unanswered']} / {outcomes['duplicated']}", "0 / 0")]  # fmt: skip
    for event in rebalance["events"]:
        rows.append((f"rebalance: {event['event']} pause of moved partitions",
                     f"{event['max_partition_gap_ms'] / 1000:.1f} s", "-"))  # fmt: skip
    return rows


def markdown_table(rows: Sequence[tuple[str, str, str]]) -> str:
    lines = ["| metric | measured | target |", "| --- | --- | --- |"]
    lines += [f"| {metric} | {value} | {target} |" for metric, value, target in rows]
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
        markdown_table(rows),
    ]
    if (out / "throughput.png").exists():
        text.append("\n![throughput](throughput.png)\n")
    path = out / "summary.md"
    path.write_text("\n".join(text))
    return path
