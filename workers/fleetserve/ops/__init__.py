"""Operations endpoints of a worker: Prometheus metrics, liveness and readiness over HTTP."""

from fleetserve.ops.health import HealthInputs, HealthReport, evaluate_health
from fleetserve.ops.http import OpsServer

__all__ = ["HealthInputs", "HealthReport", "OpsServer", "evaluate_health"]
