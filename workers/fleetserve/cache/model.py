"""What the cache hands out and what it reports: plain data, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass

from fleetserve.core.route import Route
from fleetserve.models.runtime import InferenceSession, ModelMetadata

CacheKey = tuple[str, str, str]
"""``Route.cache_key``: (bot id, model version, sha256). The stage is not part of it, so
dev, beta and real serving the same snapshot share one session."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A ready session for one snapshot, with what answering a query needs beside it."""

    route: Route
    session: InferenceSession
    metadata: ModelMetadata
    quantization: str
    """``"int4"``, ``"int8"`` or ``"fp32"``, from the manifest."""
    footprint_bytes: int
    """What this entry counts against the cache's budget (see ``footprint.py``)."""
    load_seconds: float
    """From the miss to a ready session: manifest, bytes, checks, session, metadata."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A consistent snapshot of the cache's counters, taken under its lock."""

    hits: int
    misses: int
    """Acquisitions not answered by a resident model (loads, joined loads, remembered failures)."""
    evictions: int
    """Entries dropped to fit the byte or count budget."""
    loads_failed: int
    """Loads that raised; a remembered failure re-raised within its TTL is not counted again."""
    resident_bytes: int
    resident_models: int
    loads: int = 0
    """Loads that produced a session."""
    retired: int = 0
    """Entries dropped because their bot's deployment moved on."""
    pinned_models: int = 0
