"""The model cache's Prometheus metrics, registered on the registry the worker serves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# A miss costs about 1 ms here (manifest, sha256, session); the buckets resolve that range
# and still catch a slow store.
LOAD_SECONDS_BUCKETS = (
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.hits = Counter(
            "fleetserve_cache_hits", "Acquisitions answered by a resident model", registry=registry
        )
        self.misses = Counter(
            "fleetserve_cache_misses",
            "Acquisitions that loaded, joined a load or met a remembered failure",
            registry=registry,
        )
        self.evictions = Counter(
            "fleetserve_cache_evictions",
            "Models dropped to fit the byte or count budget",
            registry=registry,
        )
        self.retired = Counter(
            "fleetserve_cache_retired",
            "Models dropped because their bot's deployment moved on",
            registry=registry,
        )
        self.load_failures = Counter(
            "fleetserve_cache_load_failures",
            "Loads that failed, by dead-letter reason",
            ["reason"],
            registry=registry,
        )
        self.load_seconds = Histogram(
            "fleetserve_cache_load_seconds",
            "Miss to ready session: manifest, model bytes, checks, session, metadata",
            buckets=LOAD_SECONDS_BUCKETS,
            registry=registry,
        )
        self.resident_bytes = Gauge(
            "fleetserve_cache_resident_bytes",
            "Measured bytes of the resident models (see cache/footprint.py)",
            registry=registry,
        )
        self.resident_models = Gauge(
            "fleetserve_cache_resident_models", "Models resident in the cache", registry=registry
        )
