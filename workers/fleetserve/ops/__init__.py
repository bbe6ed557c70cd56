"""Operations endpoints of a worker: Prometheus metrics, liveness and readiness over HTTP."""
