"""Liveness and readiness of a worker from a snapshot of its state (pure)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_HEARTBEAT_AGE_S = 30.0


@dataclass(frozen=True)
class HealthReport:
    """What /livez and /readyz answer; ``reasons`` say why something is not live or ready."""

    live: bool
    ready: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class HealthInputs:
    """A snapshot of the worker's state, filled in by the worker for each health check."""

    assigned_partitions: int
    deployments_caught_up: bool
    producer_healthy: bool
    loop_heartbeat_age_s: float
    stopping: bool


def evaluate_health(
    inputs: HealthInputs, *, max_heartbeat_age_s: float = DEFAULT_MAX_HEARTBEAT_AGE_S
) -> HealthReport:
    """Live: the loop beat recently. Ready: live, owns partitions, routes known, can produce.

    Liveness looks only at the loop, so a restart is asked for only when restarting can
    help (a stuck loop); everything else just takes the worker out of rotation.
    """
    live = inputs.loop_heartbeat_age_s <= max_heartbeat_age_s
    reasons: list[str] = []
    if not live:
        reasons.append(
            f"loop heartbeat is {inputs.loop_heartbeat_age_s:.1f}s old "
            f"(max {max_heartbeat_age_s:g}s)"
        )
    if inputs.stopping:
        reasons.append("stopping")
    if inputs.assigned_partitions < 1:
        reasons.append("no partitions assigned")
    if not inputs.deployments_caught_up:
        reasons.append("deployments not caught up")
    if not inputs.producer_healthy:
        reasons.append("producer unhealthy")
    return HealthReport(live=live, ready=not reasons, reasons=tuple(reasons))
