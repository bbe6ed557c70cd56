"""`promote --guarded`, pure: may a stage's version go up, judged by its shadow traffic?

The shadow group answers the real traffic with the source stage's model; its replies,
joined with the real ones by request id (``fleetserve shadow-report``), say how often
the two agree and how often each falls back. The promotion is refused when there are
too few joined replies from the version being promoted, when they agree less than
``min_agreement``, or when the shadow falls back more than ``max_fallback_increase``
above the real model.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetserve.shadow.join import ShadowStats


@dataclass(frozen=True)
class PromotionPolicy:
    min_joined: int = 200
    min_agreement: float = 0.90
    max_fallback_increase: float = 0.05


def promotion_problems(
    stats: ShadowStats | None, version: str, policy: PromotionPolicy
) -> list[str]:
    """Why promoting ``version`` is refused; empty when the shadow evidence allows it."""
    if stats is None or stats.joined == 0:
        return ["no shadow replies joined with real ones for this bot"]
    problems = []
    if version not in stats.shadow_versions:
        seen = ", ".join(stats.shadow_versions) or "none"
        problems.append(f"the shadow replies are from {seen}, not from {version}")
    if stats.joined < policy.min_joined:
        problems.append(f"only {stats.joined} joined replies (policy: {policy.min_joined})")
    if stats.agreement_rate is not None and stats.agreement_rate < policy.min_agreement:
        problems.append(f"agreement {stats.agreement_rate:.1%} is under {policy.min_agreement:.1%}")
    real, shadow = stats.real_fallback_rate, stats.shadow_fallback_rate
    if real is not None and shadow is not None and shadow - real > policy.max_fallback_increase:
        problems.append(
            f"fallback rate {shadow:.1%} vs {real:.1%} on real, over the allowed "
            f"+{policy.max_fallback_increase:.1%}"
        )
    return problems
