"""The deployments the monitor knows (tailed live) and the guard's watches over them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from confluent_kafka import Message

from fleetserve.config.settings import KafkaSettings
from fleetserve.contracts.codec import decode
from fleetserve.contracts.schemas import MessageKind
from fleetserve.kafka.tailer import TopicTailer
from fleetserve.monitor.guard import GuardPolicy, Watch, watches_in

logger = logging.getLogger(__name__)


class DeploymentBook:
    """The latest deployment record per bot, and one watch per (bot, stage) at most.

    Records arrive on the tailer's thread; the guard and the pages read from the event
    loop. A lock keeps the two consistent.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, policy: GuardPolicy) -> None:
        self.policy = policy
        self.records: dict[str, dict[str, Any]] = {}
        self.watches: dict[tuple[str, str], Watch] = {}
        self._lock = threading.Lock()
        self.tailer = TopicTailer(kafka, topic, self._apply, name="monitor-deployments")

    def _apply(self, message: Message) -> None:
        key = (message.key() or b"").decode("utf-8", "replace")
        value = message.value()
        record = None if value is None else decode(MessageKind.DEPLOYMENT, value)
        self.apply(key, record, int(time.time() * 1000))

    def apply(self, bot_id: str, record: Mapping[str, Any] | None, now_ms: int) -> None:
        with self._lock:
            if record is None:
                self.records.pop(bot_id, None)
                return
            self.records[bot_id] = dict(record)
            for stage, live in record["stages"].items():
                watch = self.watches.get((bot_id, stage))
                if watch is not None and watch.new_version != live["model_version"]:
                    # A rollback or a newer deploy ended this watch; it is kept to be shown.
                    state = "superseded" if watch.state == "watching" else watch.state
                    self.watches[(bot_id, stage)] = replace(watch, state=state)
            for watch in watches_in(record, now_ms, self.policy):
                known = self.watches.get(watch.key)
                if known is None or known.deployed_at_ms != watch.deployed_at_ms:
                    logger.info(
                        "guard watches %s on %s: %s replaced %s",
                        watch.bot_id,
                        watch.stage,
                        watch.new_version,
                        watch.old_version,
                    )
                    self.watches[watch.key] = watch

    def update(self, watch: Watch) -> None:
        with self._lock:
            if self.watches.get(watch.key, watch).deployed_at_ms == watch.deployed_at_ms:
                self.watches[watch.key] = watch

    def snapshot(self) -> tuple[dict[str, dict[str, Any]], list[Watch]]:
        with self._lock:
            return dict(self.records), list(self.watches.values())
