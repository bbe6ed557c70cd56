"""The live routing table: which snapshot answers each bot on each stage (no I/O).

Writers (the deployments tailer) go through :meth:`RoutingTable.apply`; readers on the
hot path call :meth:`RoutingTable.resolve`, which takes no lock. That is safe because a
bot's stage map is never changed in place: ``apply`` builds a new read-only map and swaps
it in with one dict assignment, so a reader sees either the bot's old state or its new
one, never a mix of the two.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fleetserve.core.facts import STAGES
from fleetserve.core.records import Coordinates
from fleetserve.core.route import Route
from fleetserve.errors import ContractError, QueryFailed

ROUTE_PHASE = "route"
UNKNOWN_BOT = "unknown_bot"
NO_DEPLOYMENT = "no_deployment"

StageRoutes = Mapping[str, Route]
_NO_ROUTES: StageRoutes = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RouteChange:
    """One stage of one bot now routes elsewhere; ``old``/``new`` None means none."""

    bot_id: str
    stage: str
    old: Route | None
    new: Route | None


def routes_from_record(record: Mapping[str, Any]) -> dict[str, Route]:
    """The route of every stage a deployment v1 record serves.

    Raises ContractError (``schema_violation``) when a field routing needs is missing;
    the codec has normally rejected such a record already.
    """
    try:
        bot_id = record["bot_id"]
        return {
            stage: Route(
                bot_id=bot_id,
                stage=stage,
                model_version=entry["model_version"],
                sha256=entry["sha256"],
                # The contract says an absent switch means the text is kept.
                include_query_text=bool(entry.get("include_query_text", True)),
                location=location_of(entry),
            )
            for stage, entry in record["stages"].items()
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise ContractError(
            "schema_violation", f"deployment record has no usable stages: {exc!r}"
        ) from exc


def location_of(entry: Mapping[str, Any]) -> Coordinates | None:
    """A stage entry's snapshot location (topic, partition, offset), if it names one."""
    where = entry.get("location")
    if where is None:
        return None
    return (where["topic"], where["partition"], where["offset"])


def diff_routes(bot_id: str, old: StageRoutes, new: StageRoutes) -> list[RouteChange]:
    """The stages whose route differs between ``old`` and ``new``, in stage order."""
    stages = sorted(old.keys() | new.keys(), key=_stage_order)
    return [
        RouteChange(bot_id, stage, old.get(stage), new.get(stage))
        for stage in stages
        if old.get(stage) != new.get(stage)
    ]


class RoutingTable:
    """The current route of every bot and stage; thread-safe, lock-free to read."""

    def __init__(self) -> None:
        self._bots: dict[str, StageRoutes] = {}
        self._write_lock = threading.Lock()

    def apply(self, bot_id: str, record: Mapping[str, Any] | None) -> list[RouteChange]:
        """Make ``record`` (None: a tombstone) the bot's state; the routes that changed.

        Raises ContractError, leaving the table as it was, when the record is unusable or
        belongs to another bot (the record key and its ``bot_id`` must agree).
        """
        new: StageRoutes | None = None
        if record is not None:
            if record.get("bot_id") != bot_id:
                raise ContractError(
                    "schema_violation",
                    f"record for {record.get('bot_id')!r} arrived under key {bot_id!r}",
                )
            new = MappingProxyType(routes_from_record(record))
        with self._write_lock:
            old = self._bots.get(bot_id, _NO_ROUTES)
            if new is None:
                self._bots.pop(bot_id, None)
            else:
                self._bots[bot_id] = new
        return diff_routes(bot_id, old, new or _NO_ROUTES)

    def resolve(self, bot_id: str, stage: str) -> Route:
        """The route for one query; raises QueryFailed (phase ``route``) when there is none."""
        stages = self._bots.get(bot_id)
        if stages is None:
            raise QueryFailed(
                UNKNOWN_BOT, f"no deployment record for bot {bot_id!r}", phase=ROUTE_PHASE
            )
        route = stages.get(stage)
        if route is None:
            have = ", ".join(sorted(stages, key=_stage_order)) or "none"
            raise QueryFailed(
                NO_DEPLOYMENT,
                f"bot {bot_id!r} has nothing deployed on {stage!r}; deployed stages: {have}",
                phase=ROUTE_PHASE,
            )
        return route

    def routes(self, bot_id: str) -> list[Route]:
        """What each stage routes ``bot_id`` to now (none when it has no record)."""
        return list(self._bots.get(bot_id, _NO_ROUTES).values())

    def __len__(self) -> int:
        return len(self._bots)

    def bots(self) -> list[str]:
        """Every bot with a record, sorted."""
        with self._write_lock:  # iterating while a writer resizes the dict would raise
            return sorted(self._bots)


def _stage_order(stage: str) -> tuple[int, str]:
    # Known stages in pipeline order (dev, beta, real), anything else after them.
    return (STAGES.index(stage) if stage in STAGES else len(STAGES), stage)
