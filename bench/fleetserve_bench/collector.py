"""Collect every reply of a topic on a thread, by request id, while a scenario runs."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import orjson
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from fleetserve.config.settings import KafkaSettings
from fleetserve.kafka.clients import consumer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    request_id: str
    produced_ms: float
    latency_ms: float
    partition: int
    offset: int


@dataclass
class ReplyCollector:
    """A background ``read_committed`` reader of a replies topic from its beginning."""

    kafka: KafkaSettings
    topic: str
    replies: list[Reply] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # request ids; only this thread adds
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ReplyCollector:
        self._thread = threading.Thread(target=self._run, name="bench-replies", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Reply]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.replies

    def wait_for(self, wanted: set[str], timeout_s: float) -> bool:
        """Whether every id in ``wanted`` had a reply within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if wanted.issubset(self.seen):
                return True
            time.sleep(0.05)
        return wanted.issubset(self.seen)

    def _run(self) -> None:
        reader = consumer(
            self.kafka,
            {
                "group.id": f"bench-reader-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                # Latency comes from the replies' own timestamps; fewer fetches spare
                # the broker, whose cost per fetch grows with the log on Tansu.
                "fetch.wait.max.ms": 200,
            },
        )
        try:
            partitions = reader.list_topics(self.topic, timeout=10).topics[self.topic].partitions
            reader.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            while not self._stop.is_set():
                for message in reader.consume(5_000, 0.1):
                    if message.error() is None:
                        reply = orjson.loads(message.value() or b"{}")
                        self.seen.add(reply["request_id"])
                        self.replies.append(
                            Reply(
                                reply["request_id"],
                                float(reply["produced_at_ms"]),
                                float(reply["timings"]["total_ms"]),
                                message.partition() or 0,
                                message.offset() or 0,
                            )
                        )
        finally:
            reader.close()
