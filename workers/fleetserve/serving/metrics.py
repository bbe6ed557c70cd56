"""The worker's own Prometheus metrics (the cache registers its own beside them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_RECORDS = (1, 5, 10, 50, 100, 250, 500, 1000, 5000)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter("fleetserve_records", "Query records consumed", registry=registry)
        self.replies = Counter(
            "fleetserve_replies", "Replies committed", ["stage"], registry=registry
        )
        self.dead_letters = Counter(
            "fleetserve_dead_letters", "Dead letters committed", ["reason"], registry=registry
        )
        self.batch_seconds = Histogram(
            "fleetserve_batch_seconds",
            "One pass: decode, route, load, infer, produce, commit",
            buckets=_SECONDS,
            registry=registry,
        )
        self.batch_records = Histogram(
            "fleetserve_batch_records", "Records per pass", buckets=_RECORDS, registry=registry
        )
        self.retries = Counter(
            "fleetserve_retries",
            "Queries sent to the retry tier, by the transient failure's reason",
            ["reason"],
            registry=registry,
        )
        self.aborted = Counter(
            "fleetserve_transactions_aborted",
            "Passes whose transaction was aborted and re-read",
            registry=registry,
        )
        self.deferred = Counter(
            "fleetserve_fair_share_deferrals",
            "Partitions put back in a pass because one bot used its share",
            registry=registry,
        )
        self.pass_size = Gauge(
            "fleetserve_pass_size", "Records the next pass may take (adaptive)", registry=registry
        )
        self.assigned = Gauge(
            "fleetserve_assigned_partitions", "Query partitions assigned", registry=registry
        )
        self.rebalances = Counter(
            "fleetserve_rebalances", "Assignment changes", ["kind"], registry=registry
        )
        self.rebalance_cold_loads = Histogram(
            "fleetserve_rebalance_cold_loads",
            "Cache misses in the window after an assignment change",
            buckets=(0, 1, 5, 10, 50, 100, 500, 1000, 5000),
            registry=registry,
        )
