"""The cache's bookkeeping values: a load in flight, its outcome, the counters. Pure."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from fleetserve.cache.model import LoadedModel
from fleetserve.core.route import Route
from fleetserve.deadletters import reasons
from fleetserve.errors import QueryFailed


@dataclass(eq=False)
class Load:
    """One load in flight for one key; the event is that key's lock."""

    waiters: int
    retired: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    model: LoadedModel | None = None
    failure: QueryFailed | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    load: Load
    owner: bool  # this caller must run the load


Step = LoadedModel | QueryFailed | Pending


@dataclass
class Counts:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    loads: int = 0
    loads_failed: int = 0
    retired: int = 0


def as_failure(route: Route, exc: BaseException) -> QueryFailed:
    if isinstance(exc, QueryFailed):
        return exc
    return QueryFailed(
        reasons.MODEL_LOAD_FAILED,
        f"{route.bot_id} version {route.model_version}: loading raised {exc!r}",
        phase=reasons.PHASE_LOAD,
    )


def for_route(route: Route, model: LoadedModel) -> LoadedModel:
    # Stages that deploy the same snapshot share its session; each caller still sees its
    # own route (stage, include_query_text) on what it gets back.
    return model if model.route == route else replace(model, route=route)
