"""Keep a RoutingTable live: tail the compacted deployments topic on a background thread."""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import Message

from fleetserve.config.settings import KafkaSettings
from fleetserve.contracts.codec import decode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.errors import ContractError
from fleetserve.kafka.tailer import TopicTailer
from fleetserve.routing.table import RouteChange, RoutingTable

logger = logging.getLogger(__name__)


class DeploymentTailer(TopicTailer):
    """Applies every record of the deployments topic to a RoutingTable, from the beginning.

    A change must reach queries within 2 s; a record is handed over as soon as it is
    fetched, and ``on_change`` hears about every route it changed.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        table: RoutingTable,
        *,
        on_change: Callable[[RouteChange], None] | None = None,
        idle_s: float = 0.5,
    ) -> None:
        super().__init__(kafka, topic, self._apply, name="deployments", idle_s=idle_s)
        self._table = table
        self._on_change = on_change

    def _apply(self, message: Message) -> None:
        key = message.key()
        if not key:
            raise ContractError("schema_violation", "record has no key (the bot id)")
        bot_id = key.decode("utf-8", errors="replace")
        value = message.value()
        record = None if value is None else decode(MessageKind.DEPLOYMENT, value)
        for change in self._table.apply(bot_id, record):
            self._notify(change)

    def _notify(self, change: RouteChange) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(change)
        except Exception:  # a listener's bug must not stop routing for everyone else
            logger.exception("on_change failed for %s/%s", change.bot_id, change.stage)
