"""Settings: one frozen object, built once at the entry point from flags, environment and file."""

from fleetserve.config.settings import KafkaSettings, Settings, Stage
from fleetserve.config.sources import build_settings

__all__ = ["KafkaSettings", "Settings", "Stage", "build_settings"]
