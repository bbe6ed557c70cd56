"""The density and rebalance scenarios at toy sizes: their results are complete and sane.

Performance is not asserted here (the benchmark publishes it); what is asserted is the
shape of each result, that its numbers are numbers in range, that a budget smaller than
the fleet does evict and one larger keeps every bot resident, and that a group that
gains and loses a worker under load answers every query exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetserve_bench.density import density_run, uniform_bots
from fleetserve_bench.metrics_scrape import histogram_quantile, parse_metrics
from fleetserve_bench.rebalance import rebalance_run
from fleetserve_bench.rebalance_stats import max_gap, recovery_s
from fleetserve_bench.world import BenchWorld, bench_world
from support.kafka_log import read_committed_log

BOTS = 20
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchWorld]:
    cache: Path = tmp_path_factory.mktemp("bench-cache")
    with bench_world(BOTS, seed=3, cache_dir=cache) as running:
        yield running


def assert_non_negative(value: Any, where: str = "result") -> None:
    """Every number anywhere in ``value`` is >= 0 (None allowed: 'not measured')."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int | float):
        assert value >= 0, f"{where} = {value}"
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_non_negative(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_non_negative(item, f"{where}[{index}]")


def assert_density_shape(result: dict[str, Any], workers: int, queries: int) -> None:
    orjson.dumps(result)  # JSON-ready
    assert_non_negative(result)
    assert result["scenario"] == "density"
    assert result["bots"] == BOTS
    assert result["workers"] == workers
    assert result["outputs"] == queries
    assert result["replies_per_s"] > 0
    cache = result["cache"]
    assert 0 <= cache["hit_rate"] <= 1
    assert cache["loads"] >= 1
    assert cache["load_failures"] == 0
    cold = cache["cold_load_ms"]
    assert cold["count"] == cache["loads"]
    assert 0 < cold["p50"] <= cold["p99"]
    assert len(cache["resident_models"]) == workers
    rss = result["rss"]
    series = rss["series"]
    samples = len(series["t_s"])
    assert samples >= 2
    assert series["t_s"] == sorted(series["t_s"])
    assert len(series["rss_bytes"]) == workers
    assert all(len(one) == samples for one in series["rss_bytes"])
    assert all(len(one) == samples for one in series["resident_models"])
    assert len(series["evictions"]) == samples
    assert all(
        0 < ready <= peak for ready, peak in zip(rss["ready_bytes"], rss["peak_bytes"], strict=True)
    )
    assert rss["end_total_bytes"] == sum(rss["end_bytes"]) > 0


def test_density_fits_keeps_every_bot_resident(world: BenchWorld) -> None:
    result = density_run(
        world, workers=1, model_memory="256MiB", queries=3 * BOTS, timeout_s=TIMEOUT_S,
        sample_s=0.2, variant="fits",
    )  # fmt: skip
    assert_density_shape(result, workers=1, queries=3 * BOTS)
    assert result["cache"]["resident_models"] == [BOTS]
    assert result["cache"]["evictions"] == 0
    assert result["rss"]["growth_per_resident_model_bytes"][0] is not None


def test_density_churn_evicts_within_a_small_budget(world: BenchWorld) -> None:
    # About 270 KiB a session: 1 MiB holds three or four of the twenty bots.
    result = density_run(
        world, workers=2, model_memory="1MiB", queries=20 * BOTS, timeout_s=TIMEOUT_S,
        sample_s=0.2,
    )  # fmt: skip
    assert_density_shape(result, workers=2, queries=20 * BOTS)
    cache = result["cache"]
    assert cache["evictions"] > 0
    assert cache["evictions_per_s"] > 0
    assert cache["hit_rate"] < 1
    assert all(models < BOTS for models in cache["resident_models"])
    assert all(size <= 1024 * 1024 for size in cache["resident_bytes"])


def test_rebalance_answers_every_query_exactly_once(world: BenchWorld) -> None:
    result = rebalance_run(world, offered_per_s=100, duration_s=6, timeout_s=TIMEOUT_S, settle_s=2)
    orjson.dumps(result)
    assert_non_negative(result)
    outcomes = result["outcomes"]
    assert outcomes["sent"] >= 600
    assert outcomes["unanswered"] == 0
    assert outcomes["other_replies"] == BOTS  # the warm-up: one query per bot
    assert outcomes["replied"] == outcomes["sent"]
    aborted = sum(span["workers"]["aborted_transactions"] for span in spans(result))
    # The raw counts come from a read_committed consumer, which Tansu also hands the
    # records of aborted transactions. With no duplicate and no aborted pass they are the
    # committed counts; otherwise count the committed log itself, markers applied.
    if outcomes["duplicated"] or aborted:
        assert_committed_once(world, result)

    add, stop = result["events"]
    assert (add["event"], stop["event"]) == ("add_worker", "stop_worker")
    assert 0 < add["at_s"] < stop["at_s"] < result["load_s"]
    assert add["ready_s"] > 0
    assert add["settled_s"] is not None
    assert stop["settled_s"] is not None
    assert stop["exit_code"] == 0
    assert 0 < stop["stopped_share"] <= 1
    for span in spans(result):
        assert span["latency_ms"]["p50"] <= span["latency_ms"]["max"]
        assert span["workers"]["records"] > 0
    assert len(result["rate_series"]["replies_per_s"]) >= 4 * result["load_s"]


def spans(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [result["steady"], *result["events"]]


def assert_committed_once(world: BenchWorld, result: dict[str, Any]) -> None:
    log = read_committed_log(world.bootstrap, result["replies_topic"], timeout_s=30)
    committed = Counter(orjson.loads(r.value or b"{}")["request_id"] for r in log.committed)
    assert len(committed) == result["outcomes"]["sent"]
    assert set(committed.values()) == {1}
    assert not log.open


# -- the pure helpers ----------------------------------------------------------------------


def test_uniform_bots_asks_every_bot_first_then_draws_uniformly() -> None:
    bots = [f"b{i}" for i in range(7)]
    picks = uniform_bots(bots, 7_000, seed=1)
    assert len(picks) == 7_000
    assert sorted(picks[:7]) == bots  # one round of the whole fleet first
    assert all(650 < n < 1350 for n in Counter(picks).values())
    assert picks != uniform_bots(bots, 7_000, seed=2)
    assert len(uniform_bots(bots, 3, seed=1)) == 3


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    text = (
        "# TYPE x_seconds histogram\n"
        'x_seconds_bucket{le="0.001"} 10\n'
        'x_seconds_bucket{le="0.002"} 30\n'
        'x_seconds_bucket{le="0.005"} 40\n'
        'x_seconds_bucket{le="+Inf"} 40\n'
        "x_seconds_sum 0.07\n"
        "x_seconds_count 40\n"
    )
    scrape = parse_metrics(text)
    buckets = scrape.buckets["x_seconds"]
    assert scrape.get("x_seconds_count") == 40
    assert histogram_quantile(buckets, 0.25) == pytest.approx(0.001)
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.0015)
    assert histogram_quantile(buckets, 1.0) == pytest.approx(0.005)
    assert histogram_quantile([(float("inf"), 0.0)], 0.5) is None
    # A rank in the +Inf bucket answers the largest finite bound.
    assert histogram_quantile([(0.001, 1.0), (float("inf"), 10.0)], 0.99) == 0.001


def test_gap_and_recovery_helpers() -> None:
    assert max_gap([]) == 0.0
    assert max_gap([5.0, 7.0, 20.0]) == 13.0
    # 10 replies per second offered; replies every 100 ms except a 2 s hole after t=1 s.
    produced = [t * 100.0 for t in range(11)] + [3000.0 + t * 100.0 for t in range(30)]
    assert recovery_s(produced, 1000.0, 6000.0, 10.0) == pytest.approx(2.7, abs=0.05)
    steady = [t * 100.0 for t in range(60)]
    assert recovery_s(steady, 1000.0, 5000.0, 10.0) == 0.0
    assert recovery_s(steady, 1000.0, 1500.0, 10.0) is None  # shorter than a window
    assert recovery_s(produced, 1000.0, 3500.0, 10.0) is None  # not recovered by its end
