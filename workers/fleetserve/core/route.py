"""Where one bot's queries for one stage go: the deployed snapshot (pure data)."""

from __future__ import annotations

from dataclasses import dataclass

from fleetserve.core.records import Coordinates


@dataclass(frozen=True, slots=True)
class Route:
    """The snapshot that answers ``bot_id`` on ``stage``, as the deployments topic says now.

    Two routes for the same bot and stage with different versions are two cache entries,
    which is what makes a live swap (and a rollback) a plain cache miss.
    """

    bot_id: str
    stage: str
    model_version: str
    sha256: str
    include_query_text: bool = True
    location: Coordinates | None = None
    """Where the models topic holds the snapshot, when the deployment says (not in the key)."""

    @property
    def cache_key(self) -> tuple[str, str, str]:
        return (self.bot_id, self.model_version, self.sha256)
