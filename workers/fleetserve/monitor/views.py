"""Read models over the windowed tables, pure: rolling sums, the fleet overview, a bot's page.

The tables hold one flat summary per (bot, version, stage) and window. Minute windows
(kept an hour) give the last hour and the sparklines; hour windows (kept a day) give the
rolling 24 h, which therefore covers the current hour and the 24 before it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from fleetserve.stats.buckets import LATENCY_UPPERS, UNIT_UPPERS, quantile
from fleetserve.stats.summary import StatsKey, Summary, from_flat

MINUTE_S: Final = 60
HOUR_S: Final = 3_600
SPARK_MINUTES: Final = 60

Windows = dict[StatsKey, dict[int, Summary]]
"""Per key, window start (epoch seconds) -> summary."""


def collect(items: Iterable[tuple[Any, Any]]) -> Windows:
    """Group a windowed table's raw items ``((key, (start, end)), flat)`` by key."""
    windows: Windows = {}
    for raw_key, value in items:
        if not isinstance(raw_key, (tuple, list)) or len(raw_key) != 2 or value is None:
            continue
        key_text, (start, _end) = raw_key
        key = StatsKey.parse(str(key_text))
        windows.setdefault(key, {})[int(start)] = from_flat(value)
    return windows


def total(windows: Mapping[int, Summary], since_s: float, until_s: float = math.inf) -> Summary:
    """Everything in the windows that start in ``[since_s, until_s)``."""
    summary = Summary()
    for start, window in windows.items():
        if since_s <= start < until_s:
            summary.merge(window)
    return summary


def window_start(epoch_s: float, size_s: int) -> int:
    return int(epoch_s // size_s * size_s)


def summary_view(summary: Summary) -> dict[str, Any]:
    """A summary as the JSON and pages show it: counts, rates, means and quantiles."""
    replies, outcomes = summary.replies, summary.outcomes
    return {
        "outcomes": outcomes,
        "replies": replies,
        "fallbacks": summary.fallbacks,
        "fallback_rate": _ratio(summary.fallbacks, replies),
        "mean_confidence": _ratio(summary.confidence_sum, replies),
        "dead_letters": summary.dead_letter_count,
        "dead_letter_rate": _ratio(summary.dead_letter_count, outcomes),
        "dead_letters_by_reason": dict(sorted(summary.dead_letters.items())),
        "latency_p50_ms": _finite(quantile(summary.latency_hist, 0.5, LATENCY_UPPERS)),
        "latency_p95_ms": _finite(quantile(summary.latency_hist, 0.95, LATENCY_UPPERS)),
        "mean_latency_ms": _ratio(summary.latency_sum_ms, replies),
        "mean_inference_ms": _ratio(summary.inference_sum_ms, replies),
        "confidence_histogram": list(summary.confidence_hist),
        "margin_histogram": list(summary.margin_hist),
        "margin_p50": quantile(summary.margin_hist, 0.5, UNIT_UPPERS),
    }


def _ratio(part: float, whole: int) -> float | None:
    return part / whole if whole else None


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


def sparkline(windows: Mapping[int, Summary], now_s: float) -> list[int]:
    """Outcomes per minute over the last hour, oldest first."""
    last = window_start(now_s, MINUTE_S)
    starts = range(last - (SPARK_MINUTES - 1) * MINUTE_S, last + 1, MINUTE_S)
    return [windows[start].outcomes if start in windows else 0 for start in starts]


def key_views(key: StatsKey, minutes: Windows, hours: Windows, now_s: float) -> dict[str, Any]:
    minute = minutes.get(key, {})
    return {
        "bot_id": key.bot_id,
        "model_version": key.model_version,
        "stage": key.stage,
        "last_minute": summary_view(total(minute, window_start(now_s, MINUTE_S))),
        "last_hour": summary_view(total(minute, now_s - HOUR_S)),
        "last_24h": summary_view(
            total(hours.get(key, {}), window_start(now_s, HOUR_S) - 24 * HOUR_S)
        ),
        "sparkline": sparkline(minute, now_s),
    }


def fleet_overview(
    minutes: Windows,
    hours: Windows,
    deployments: Mapping[str, Mapping[str, Any]],
    now_s: float,
) -> list[dict[str, Any]]:
    """One row per bot (deployed or seen in the tables), by bot id."""
    keys_by_bot: dict[str, list[StatsKey]] = {}
    for key in set(minutes) | set(hours):
        keys_by_bot.setdefault(key.bot_id, []).append(key)
    rows = []
    for bot_id in sorted(set(keys_by_bot) | set(deployments)):
        keys = keys_by_bot.get(bot_id, [])
        hour = Summary()
        day = Summary()
        spark = [0] * SPARK_MINUTES
        for key in keys:
            hour.merge(total(minutes.get(key, {}), now_s - HOUR_S))
            day.merge(total(hours.get(key, {}), window_start(now_s, HOUR_S) - 24 * HOUR_S))
            spark = [
                a + b for a, b in zip(spark, sparkline(minutes.get(key, {}), now_s), strict=True)
            ]
        record = deployments.get(bot_id) or {}
        rows.append(
            {
                "bot_id": bot_id,
                "stages": {
                    stage: live["model_version"]
                    for stage, live in sorted(record.get("stages", {}).items())
                },
                "last_action": record.get("action"),
                "last_actor": record.get("actor"),
                "last_hour": summary_view(hour),
                "last_24h": summary_view(day),
                "sparkline": spark,
            }
        )
    return rows


def bot_detail(
    bot_id: str,
    minutes: Windows,
    hours: Windows,
    record: Mapping[str, Any] | None,
    now_s: float,
) -> dict[str, Any]:
    """A bot's versions side by side, and its deploy history from the deployment record."""
    keys = sorted({key for key in (*minutes, *hours) if key.bot_id == bot_id}, key=StatsKey.text)
    history = []
    for stage, live in sorted((record or {}).get("stages", {}).items()):
        history.append(
            {
                "stage": stage,
                "live": live["model_version"],
                "deployed_at_ms": live["deployed_at_ms"],
                "previous": [p["model_version"] for p in live.get("previous", [])],
            }
        )
    return {
        "bot_id": bot_id,
        "deployment": record,
        "history": history,
        "versions": [key_views(key, minutes, hours, now_s) for key in keys],
    }
