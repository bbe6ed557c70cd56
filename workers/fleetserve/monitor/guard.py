"""The rollout guard, pure: which deployments to watch, and whether a new version is worse.

After a deploy or promote puts version B on a stage that served A, the guard compares B's
live traffic since the deploy with A's traffic on that stage in the hour before it:

- fallback rate and dead-letter rate: one-sided two-proportion z-test;
- mean confidence and mean model run time: one-sided Welch test (normal approximation);
  the run time must also be both twice as long and 5 ms longer, since a reply's run time
  is its whole batch's, which grows with load as well as with the model;

A metric is *breached* when B is worse with p < ``alpha`` **and** by more than the
policy's limit (the limit keeps a large sample from flagging a harmless difference).
Nothing is decided before both sides have ``min_sample`` queries. A verdict needs a
breach on ``looks`` consecutive evaluations, so one unlucky look does not roll back; the
evaluations repeat (every few seconds), which is why ``alpha`` is small.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fleetserve.monitor.stats_tests import proportion_increase_p, welch_increase_p
from fleetserve.stats.summary import Summary

GuardAction = Literal["rollback", "alert", "off"]
WatchState = Literal["watching", "passed", "rolled_back", "alerted", "superseded"]


@dataclass(frozen=True)
class GuardPolicy:
    action: GuardAction = "rollback"
    min_sample: int = 200
    alpha: float = 0.001
    looks: int = 2
    max_fallback_increase: float = 0.10
    max_confidence_drop: float = 0.10
    max_dead_letter_increase: float = 0.05
    max_inference_ratio: float = 2.0
    min_inference_increase_ms: float = 5.0
    """And at least this much slower: a reply's ``inference_ms`` is its whole batch's run,
    which grows with the batch (with load), not only with the version."""
    baseline_ms: int = 3_600_000
    """How far before the deploy the old version's traffic is taken from."""
    watch_ms: int = 1_800_000
    """How long after a deploy the guard watches it; then it has passed."""

    def describe(self) -> str:
        return (
            f"one-sided two-proportion z-test (fallback and dead-letter rates) and Welch test "
            f"(mean confidence, mean model run time), alpha {self.alpha:g}; breached when also "
            f"worse than the limit on {self.looks} consecutive looks; at least "
            f"{self.min_sample} queries on each side"
        )


@dataclass(frozen=True)
class Check:
    metric: str
    new: float
    old: float
    new_n: int
    old_n: int
    p_value: float | None
    limit: float
    breached: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "new": round(self.new, 6),
            "old": round(self.old, 6),
            "new_n": self.new_n,
            "old_n": self.old_n,
            "p_value": None if self.p_value is None else round(self.p_value, 9),
            "limit": self.limit,
            "breached": self.breached,
        }


def _significant(p: float | None, policy: GuardPolicy) -> bool:
    return p is not None and p < policy.alpha


def compare(new: Summary, old: Summary, policy: GuardPolicy) -> list[Check]:
    """The four checks of B (``new``) against A (``old``)."""
    checks = []
    new_fb, old_fb = _rate(new.fallbacks, new.replies), _rate(old.fallbacks, old.replies)
    p = proportion_increase_p(new.fallbacks, new.replies, old.fallbacks, old.replies)
    worse = new_fb - old_fb > policy.max_fallback_increase
    checks.append(
        Check(
            "fallback_rate",
            new_fb,
            old_fb,
            new.replies,
            old.replies,
            p,
            policy.max_fallback_increase,
            worse and _significant(p, policy),
        )
    )
    new_conf = _mean(new.confidence_sum, new.replies)
    old_conf = _mean(old.confidence_sum, old.replies)
    # A drop in confidence is an increase of its negation.
    p = welch_increase_p(
        (-new.confidence_sum, new.confidence_sum_sq, new.replies),
        (-old.confidence_sum, old.confidence_sum_sq, old.replies),
    )
    worse = old_conf - new_conf > policy.max_confidence_drop
    checks.append(
        Check(
            "mean_confidence",
            new_conf,
            old_conf,
            new.replies,
            old.replies,
            p,
            policy.max_confidence_drop,
            worse and _significant(p, policy),
        )
    )
    new_dl, old_dl = _failed(new), _failed(old)
    new_rate, old_rate = _rate(new_dl, new.outcomes), _rate(old_dl, old.outcomes)
    p = proportion_increase_p(new_dl, new.outcomes, old_dl, old.outcomes)
    worse = new_rate - old_rate > policy.max_dead_letter_increase
    checks.append(
        Check(
            "dead_letter_rate",
            new_rate,
            old_rate,
            new.outcomes,
            old.outcomes,
            p,
            policy.max_dead_letter_increase,
            worse and _significant(p, policy),
        )
    )
    new_ms = _mean(new.inference_sum_ms, new.replies)
    old_ms = _mean(old.inference_sum_ms, old.replies)
    p = welch_increase_p(
        (new.inference_sum_ms, new.inference_sum_sq, new.replies),
        (old.inference_sum_ms, old.inference_sum_sq, old.replies),
    )
    worse = (
        new_ms > old_ms * policy.max_inference_ratio
        and new_ms - old_ms > policy.min_inference_increase_ms
    )
    checks.append(
        Check(
            "inference_ms",
            new_ms,
            old_ms,
            new.replies,
            old.replies,
            p,
            policy.max_inference_ratio,
            worse and _significant(p, policy),
        )
    )
    return checks


def _rate(hits: int, n: int) -> float:
    return hits / n if n else 0.0


def _mean(total: float, n: int) -> float:
    return total / n if n else 0.0


def _failed(summary: Summary) -> int:
    """Dead letters a model version can cause (load and inference), not the caller's."""
    return sum(n for reason, n in summary.dead_letters.items() if reason in VERSION_REASONS)


VERSION_REASONS = frozenset(
    {"model_missing", "model_corrupt", "model_load_failed", "inference_error", "retries_exhausted"}
)


@dataclass(frozen=True)
class Watch:
    """One deploy under watch: ``new_version`` replaced ``old_version`` on ``stage``."""

    bot_id: str
    stage: str
    new_version: str
    old_version: str
    deployed_at_ms: int
    state: WatchState = "watching"
    breached_looks: int = 0
    checks: tuple[Check, ...] = field(default_factory=tuple)
    note: str = "waiting for traffic"

    @property
    def key(self) -> tuple[str, str]:
        return (self.bot_id, self.stage)


def watches_in(record: Mapping[str, Any], now_ms: int, policy: GuardPolicy) -> list[Watch]:
    """What a deployment record asks the guard to watch (deploys and promotes only)."""
    if record.get("action") not in ("deploy", "promote"):
        return []
    found = []
    for stage, live in record["stages"].items():
        previous = live.get("previous") or []
        if not previous or now_ms - live["deployed_at_ms"] > policy.watch_ms:
            continue
        if previous[0]["model_version"] == live["model_version"]:
            continue
        found.append(
            Watch(
                record["bot_id"],
                stage,
                live["model_version"],
                previous[0]["model_version"],
                live["deployed_at_ms"],
            )
        )
    return found


@dataclass(frozen=True)
class Look:
    """The guard's judgement of one watch now; ``act`` says whether to act on it."""

    watch: Watch
    act: bool = False


def look(watch: Watch, new: Summary, old: Summary, now_ms: int, policy: GuardPolicy) -> Look:
    """Evaluate a watch once against the traffic seen so far."""
    if watch.state != "watching":
        return Look(watch)
    if now_ms - watch.deployed_at_ms > policy.watch_ms:
        return Look(replace(watch, state="passed", note="watch period over with no breach"))
    if old.outcomes < policy.min_sample:
        note = f"baseline too small ({old.outcomes} < {policy.min_sample} queries); no verdict"
        return Look(replace(watch, note=note))
    if new.outcomes < policy.min_sample:
        note = f"{new.outcomes} of {policy.min_sample} queries seen on the new version"
        return Look(replace(watch, note=note))
    checks = tuple(compare(new, old, policy))
    if not any(check.breached for check in checks):
        return Look(replace(watch, breached_looks=0, checks=checks, note="within policy"))
    looks = watch.breached_looks + 1
    breached = ", ".join(check.metric for check in checks if check.breached)
    note = f"breached: {breached} ({looks} of {policy.looks} looks)"
    updated = replace(watch, breached_looks=looks, checks=checks, note=note)
    return Look(updated, act=looks >= policy.looks and policy.action != "off")


def evidence(watch: Watch, policy: GuardPolicy, now_ms: int) -> dict[str, Any]:
    """The rollback record's ``evidence`` (deployment v1)."""
    return {
        "stage": watch.stage,
        "rolled_back_version": watch.new_version,
        "restored_version": watch.old_version,
        "test": policy.describe(),
        "checks": [check.as_json() for check in watch.checks],
        "observed_from_ms": watch.deployed_at_ms,
        "observed_to_ms": max(now_ms, watch.deployed_at_ms),
    }
