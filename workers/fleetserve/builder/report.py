"""The build report: a summary, a table for people and JSON for machines."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from rich.table import Table

from fleetserve.builder.result import BotBuildResult


def summarize(results: Sequence[BotBuildResult], wall_seconds: float) -> dict[str, Any]:
    """Counts, throughput and the medians the targets are stated in. Pure."""
    status = Counter(r.status for r in results)
    published = [r for r in results if r.status != "failed"]
    sizes = [r.model_bytes for r in published if r.model_bytes is not None]
    built = [r.build_seconds for r in results if r.status == "built"]
    accuracies = [r.accuracy for r in published if r.accuracy is not None]
    return {
        "bots": len(results),
        "built": status["built"],
        "skipped": status["skipped"],
        "failed": status["failed"],
        "failures_by_reason": dict(Counter(r.reason for r in results if r.status == "failed")),
        "int4": sum(1 for r in published if r.quantization == "int4"),
        "int8": sum(1 for r in published if r.quantization == "int8"),
        "fp32": sum(1 for r in published if r.quantization == "fp32"),
        "wall_seconds": round(wall_seconds, 3),
        "bots_per_second": round(len(results) / wall_seconds, 2) if wall_seconds > 0 else None,
        "median_model_bytes": statistics.median(sizes) if sizes else None,
        "max_model_bytes": max(sizes) if sizes else None,
        "median_build_seconds": round(statistics.median(built), 4) if built else None,
        # Cross-validated on each bot's own utterances (see BotBuildResult.accuracy).
        "median_cv_accuracy": round(statistics.median(accuracies), 2) if accuracies else None,
        "conflicts_resolved": sum(len(r.conflicts) for r in results),
        "search_seconds": round(sum((r.search or {}).get("seconds", 0.0) for r in results), 2),
    }


def results_table(results: Sequence[BotBuildResult], limit: int = 50) -> Table:
    """Failures first, then the rest; long fleets are cut to ``limit`` rows."""
    table = Table(title="fleetserve build", show_lines=False)
    for column in (
        "bot",
        "status",
        "version",
        "quant",
        "cv acc %",
        "quant Δ",
        "bytes",
        "sec",
        "conflicts",
        "reason",
    ):
        table.add_column(column)
    ordered = sorted(results, key=lambda r: (r.status != "failed", r.bot_id))
    for r in ordered[:limit]:
        table.add_row(
            r.bot_id,
            r.status,
            r.version or "-",
            r.quantization or "-",
            _num(r.accuracy, 2),
            _num(r.quantized_delta_points, 2),
            str(r.model_bytes or "-"),
            _num(r.build_seconds, 3),
            str(len(r.conflicts)) if r.conflicts else "-",
            f"{r.reason}: {r.message}" if r.reason else (r.gate or ""),
        )
    caption = [
        "cv acc %: cross-validated accuracy on the bot's own utterances (each scored by a "
        "model that did not train on it); the published model is refit on all of them"
    ]
    if len(ordered) > limit:
        caption.append(f"{len(ordered) - limit} more bots in the JSON report")
    table.caption = "\n".join(caption)
    return table


def write_report(path: Path, results: Sequence[BotBuildResult], summary: dict[str, Any]) -> None:
    payload = {
        "summary": summary,
        "bots": [r.to_dict() for r in sorted(results, key=lambda r: r.bot_id)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_line(summary: Mapping[str, Any]) -> str:
    """The build's one-line summary; medians of a build that published nothing read "none"."""
    size, accuracy = summary["median_model_bytes"], summary["median_cv_accuracy"]
    return (
        f"built {summary['built']}, skipped {summary['skipped']}, failed {summary['failed']} "
        f"of {summary['bots']} bots in {summary['wall_seconds']} s "
        f"(int4 {summary['int4']}, int8 {summary['int8']}, fp32 {summary['fp32']}; "
        f"median {'none' if size is None else f'{round(size)} bytes'}; "
        "median cross-validated accuracy "
        f"{'none' if accuracy is None else f'{accuracy}%'}; "
        f"{summary['conflicts_resolved']} conflicting texts resolved)"
    )
