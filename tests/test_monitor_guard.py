"""The rollout guard and the monitor's views, pure: no broker, no faust."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from fleetserve.contracts.codec import validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.deadletters.operators.filters import DeadLetterFilter
from fleetserve.deploy import records
from fleetserve.monitor.console import bot_page, dead_letter_page, overview_page
from fleetserve.monitor.guard import GuardPolicy, Watch, compare, evidence, look, watches_in
from fleetserve.monitor.promotion import PromotionPolicy, promotion_problems
from fleetserve.monitor.stats_tests import proportion_increase_p, welch_increase_p
from fleetserve.monitor.views import bot_detail, collect, fleet_overview
from fleetserve.shadow.join import ShadowStats
from fleetserve.stats.summary import StatsKey, Summary, flat

SHA_A, SHA_B = "a" * 64, "b" * 64
NOW_MS = 1_754_900_000_000
POLICY = GuardPolicy(min_sample=200, looks=2)


def traffic(n: int, confidence: float, fallback_below: float, seed: int) -> Summary:
    """``n`` replies with confidences around ``confidence``; under the threshold: fallback."""
    rng = random.Random(seed)  # noqa: S311
    summary = Summary()
    for _ in range(n):
        value = min(1.0, max(0.0, rng.gauss(confidence, 0.15)))
        summary.add_reply(
            confidence=value,
            margin=value / 2,
            fallback=value < fallback_below,
            latency_ms=rng.uniform(5, 50),
            inference_ms=rng.uniform(0.2, 0.4),
        )
    return summary


def watch() -> Watch:
    return Watch("bank", "real", "v2", "v1", NOW_MS - 10_000)


def test_p_values_agree_with_known_cases() -> None:
    p = proportion_increase_p(60, 200, 20, 200)
    assert p is not None
    assert p < 1e-6
    same = proportion_increase_p(20, 200, 20, 200)
    assert same == pytest.approx(0.5)
    assert proportion_increase_p(0, 0, 1, 10) is None
    higher = welch_increase_p((110.0, 110.0 * 1.1 + 1, 100), (100.0, 100.0 + 1, 100))
    assert higher is not None
    assert higher < 0.01


def test_a_shuffled_model_breaches_and_a_retrained_one_does_not() -> None:
    old = traffic(2_000, 0.8, 0.35, seed=1)
    broken = traffic(400, 0.3, 0.35, seed=2)
    retrained = traffic(400, 0.79, 0.35, seed=3)
    breached = {c.metric for c in compare(broken, old, POLICY) if c.breached}
    assert breached >= {"fallback_rate", "mean_confidence"}
    assert not any(c.breached for c in compare(retrained, old, POLICY))


def test_no_verdict_before_the_minimum_sample_on_both_sides() -> None:
    small_old = traffic(100, 0.8, 0.35, seed=1)
    broken = traffic(400, 0.3, 0.35, seed=2)
    judged = look(watch(), broken, small_old, NOW_MS, POLICY)
    assert not judged.act
    assert "baseline too small" in judged.watch.note
    judged = look(watch(), traffic(150, 0.3, 0.35, 4), traffic(900, 0.8, 0.35, 5), NOW_MS, POLICY)
    assert not judged.act
    assert "150 of 200" in judged.watch.note


def test_a_verdict_needs_consecutive_breached_looks() -> None:
    old, broken = traffic(2_000, 0.8, 0.35, 1), traffic(400, 0.3, 0.35, 2)
    first = look(watch(), broken, old, NOW_MS, POLICY)
    assert not first.act
    assert first.watch.breached_looks == 1
    healthy = look(first.watch, traffic(400, 0.8, 0.35, 6), old, NOW_MS, POLICY)
    assert healthy.watch.breached_looks == 0  # the count starts over
    second = look(
        look(healthy.watch, broken, old, NOW_MS, POLICY).watch, broken, old, NOW_MS, POLICY
    )
    assert second.act
    off = look(first.watch, broken, old, NOW_MS, GuardPolicy(action="off"))
    assert not off.act


def test_the_evidence_fits_a_rollback_record_and_nothing_else() -> None:
    old, broken = traffic(2_000, 0.8, 0.35, 1), traffic(400, 0.3, 0.35, 2)
    judged = look(watch(), broken, old, NOW_MS, GuardPolicy(looks=1))
    assert judged.act
    proof = evidence(judged.watch, POLICY, NOW_MS)
    current = records.deploy(
        None,
        bot_id="bank",
        stage="real",
        model_version="v1",
        sha256=SHA_A,
        actor="t",
        now_ms=NOW_MS - 60_000,
    )
    current = records.deploy(
        current,
        bot_id="bank",
        stage="real",
        model_version="v2",
        sha256=SHA_B,
        actor="t",
        now_ms=NOW_MS - 10_000,
    )
    rolled = records.rollback(
        current, bot_id="bank", stage="real", actor="monitor", now_ms=NOW_MS, evidence=proof
    )
    validate(MessageKind.DEPLOYMENT, rolled)
    assert rolled["stages"]["real"]["model_version"] == "v1"
    again = records.deploy(
        rolled,
        bot_id="bank",
        stage="real",
        model_version="v2",
        sha256=SHA_B,
        actor="t",
        now_ms=NOW_MS + 1,
    )
    assert "evidence" not in again


def test_watches_come_from_deploys_with_a_previous_version_only() -> None:
    first = records.deploy(
        None,
        bot_id="bank",
        stage="real",
        model_version="v1",
        sha256=SHA_A,
        actor="t",
        now_ms=NOW_MS - 60_000,
    )
    assert watches_in(first, NOW_MS, POLICY) == []
    second = records.deploy(
        first,
        bot_id="bank",
        stage="real",
        model_version="v2",
        sha256=SHA_B,
        actor="t",
        now_ms=NOW_MS - 1_000,
    )
    [found] = watches_in(second, NOW_MS, POLICY)
    assert (found.new_version, found.old_version) == ("v2", "v1")
    assert watches_in(second, NOW_MS + POLICY.watch_ms + 1_000, POLICY) == []
    back = records.rollback(second, bot_id="bank", stage="real", actor="t", now_ms=NOW_MS)
    assert watches_in(back, NOW_MS, POLICY) == []


def windows_items() -> list[tuple[Any, Any]]:
    start = NOW_MS // 1000 // 60 * 60
    busy = traffic(50, 0.8, 0.35, 9)
    busy.add_dead_letter("inference_error", 2)
    return [
        (("bank|v1|real", (float(start), start + 59.9)), flat(busy)),
        (["bank|v1|real", [float(start - 60), start - 0.1]], flat(traffic(10, 0.8, 0.35, 8))),
        (
            ("shop|-|real", (float(start), start + 59.9)),
            flat(Summary(dead_letters=Counter({"x": 1}))),
        ),
    ]


def test_views_sum_windows_and_render() -> None:
    minutes = collect(windows_items())
    assert set(minutes) == {StatsKey("bank", "v1", "real"), StatsKey("shop", None, "real")}
    deployments = {
        "bank": records.deploy(
            None,
            bot_id="bank",
            stage="real",
            model_version="v1",
            sha256=SHA_A,
            actor="t",
            now_ms=NOW_MS,
        )
    }
    rows = fleet_overview(minutes, {}, deployments, NOW_MS / 1000)
    bank = next(r for r in rows if r["bot_id"] == "bank")
    assert bank["stages"] == {"real": "v1"}
    assert bank["last_hour"]["outcomes"] == 62
    assert bank["sparkline"][-2:] == [10, 52]
    status: dict[str, Any] = {"read_only": False, "watches": [], "audit": []}
    html = overview_page(rows, status)
    assert ">bank</a>" in html
    assert "<svg" in html
    detail = bot_detail("bank", minutes, {}, deployments["bank"], NOW_MS / 1000)
    detail["watches"] = []
    assert "versions compared" in bot_page(detail, status)
    found = {"stats": {"total": 0, "by_reason": {}}, "recent": []}
    page = dead_letter_page(found, DeadLetterFilter(bots=frozenset({"<b>"})), status)
    assert "&lt;b&gt;" in page
    assert "<b>" not in page.split("<body", 1)[1]
    assert 'id="replay-dry"' in page
    read_only = dead_letter_page(found, DeadLetterFilter(), {"read_only": True})
    assert 'id="replay-dry"' not in read_only


def shadow(joined: int, agreed: int, real_fb: float, shadow_fb: float) -> ShadowStats:
    return ShadowStats(
        bot_id="bank", joined=joined, agreed=agreed, agreement_rate=agreed / joined,
        mean_confidence_delta=0.0, mean_abs_confidence_delta=0.0, max_abs_confidence_delta=0.0,
        real_fallback_rate=real_fb, shadow_fallback_rate=shadow_fb, real_versions=("v1",),
        shadow_versions=("v2",), real_only=0, shadow_only=0,
    )  # fmt: skip


def test_a_guarded_promotion_needs_enough_agreeing_shadow_replies_of_that_version() -> None:
    policy = PromotionPolicy(min_joined=200, min_agreement=0.9, max_fallback_increase=0.05)
    assert promotion_problems(shadow(500, 480, 0.05, 0.07), "v2", policy) == []
    assert promotion_problems(None, "v2", policy)
    [few] = promotion_problems(shadow(100, 100, 0.05, 0.05), "v2", policy)
    assert "only 100" in few
    [disagree] = promotion_problems(shadow(500, 400, 0.05, 0.05), "v2", policy)
    assert "agreement 80.0%" in disagree
    [falls_back] = promotion_problems(shadow(500, 480, 0.05, 0.2), "v2", policy)
    assert "fallback rate 20.0%" in falls_back
    [other] = promotion_problems(shadow(500, 480, 0.05, 0.05), "v3", policy)
    assert "not from v3" in other
