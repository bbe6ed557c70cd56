"""What `fleetserve monitor` needs: topics, the web address, the operator token, the policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fleetserve.config.settings import KafkaSettings
from fleetserve.monitor.guard import GuardPolicy
from fleetserve.store.kafka_store import ModelTopics


@dataclass(frozen=True)
class MonitorTopics:
    bot_stats: str
    deployments: str
    dead_letters: str
    replays: str
    replies: str
    shadow_replies: str | None = None


@dataclass(frozen=True)
class MonitorConfig:
    kafka: KafkaSettings
    topics: MonitorTopics
    app_id: str
    """The faust app id: its consumer group and the prefix of its changelog topics."""
    partitions: int
    """The bot-stats topic's partitions; the tables are partitioned the same way."""
    store_dir: Path
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    operator_token: str | None = field(default=None, repr=False)
    policy: GuardPolicy = field(default_factory=GuardPolicy)
    guard_interval_s: float = 1.0
    session_timeout_s: float = 10.0
    models: ModelTopics | None = None
    """The models topic: a rollback places the snapshot it restores there (None: no topic)."""
    changelog_batch_bytes: int | None = None
    """None: faust's default. Tiny (1) writes one changelog record per batch, which Tansu's
    under-reported high watermark needs for a complete recovery (tests only: it costs a
    broker round trip per table write)."""

    @property
    def read_only(self) -> bool:
        return not self.operator_token
