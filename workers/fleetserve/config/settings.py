"""The frozen settings object and its parts."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fleetserve.config.masking import mask_properties
from fleetserve.config.serving import ServingSettings

DEFAULT_STORE_DIR = Path("artifacts")
KAFKA_STORE = "kafka"
"""``--store kafka``: snapshots come from the models topic (``store/kafka_store.py``)."""


class Stage(enum.StrEnum):
    """Deployment stages a worker group serves, from least to most trusted."""

    DEV = "dev"
    BETA = "beta"
    REAL = "real"


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, repr=False)
class KafkaSettings:
    """How to reach the cluster.

    ``properties`` is passed through to librdkafka untouched (SASL, TLS, timeouts),
    so any client property works without fleetserve knowing it.
    """

    bootstrap_servers: str
    properties: Mapping[str, str] = field(default_factory=lambda: _frozen({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "properties", _frozen(self.properties))

    def client_config(self) -> dict[str, str]:
        """The librdkafka configuration shared by every client."""
        return {**self.properties, "bootstrap.servers": self.bootstrap_servers}

    def masked(self) -> dict[str, str]:
        return mask_properties(self.client_config())

    def __repr__(self) -> str:
        return f"KafkaSettings({self.masked()!r})"


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything a fleetserve process needs to know, parsed once."""

    kafka: KafkaSettings
    stage: Stage = Stage.REAL
    group_id: str = "fleetserve-real"
    worker_id: str = "worker"
    topic_file: Path | None = None  # None: the topic file bundled with the package
    topic_env: str = "local"
    topic_prefix: str = ""
    log_level: str = "INFO"
    store_dir: Path = DEFAULT_STORE_DIR  # the local artifact store of model snapshots
    # True with `--store kafka`: workers and deploy read snapshots from the models topic;
    # builds and `publish` still use store_dir (the default folder) as the build output.
    store_kafka: bool = False
    source_file: Path | None = None
    serving: ServingSettings = field(default_factory=ServingSettings)

    def masked(self) -> dict[str, Any]:
        """A printable view with secrets hidden."""
        return {
            "kafka": self.kafka.masked(),
            "stage": self.stage.value,
            "group_id": self.group_id,
            "worker_id": self.worker_id,
            "topic_file": str(self.topic_file) if self.topic_file else "(bundled)",
            "topic_env": self.topic_env,
            "topic_prefix": self.topic_prefix,
            "log_level": self.log_level,
            "store": KAFKA_STORE if self.store_kafka else str(self.store_dir),
            "store_dir": str(self.store_dir),
            "source_file": str(self.source_file) if self.source_file else None,
            "serving": dataclasses.asdict(self.serving),
        }

    def __repr__(self) -> str:
        return f"Settings({self.masked()!r})"
