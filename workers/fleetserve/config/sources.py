"""Build :class:`Settings` from defaults < config file < environment < flags.

Each source becomes a flat layer of raw values; the layers are merged and then
validated once, so a bad value fails with its name and where it came from.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetserve.config.serving import KNOBS, Knob, ServingSettings, serving_settings
from fleetserve.config.settings import (
    DEFAULT_STORE_DIR,
    KAFKA_STORE,
    KafkaSettings,
    Settings,
    Stage,
)
from fleetserve.errors import ConfigError

ENV_PREFIX = "FLEETSERVE_"
KAFKA_ENV_PREFIX = "FLEETSERVE_KAFKA_"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

# Setting name -> environment variable.
ENV_NAMES: Mapping[str, str] = {
    "bootstrap": "FLEETSERVE_BOOTSTRAP",
    "stage": "FLEETSERVE_STAGE",
    "group": "FLEETSERVE_GROUP",
    "worker_id": "FLEETSERVE_WORKER_ID",
    "topic_file": "FLEETSERVE_TOPIC_FILE",
    "topic_env": "FLEETSERVE_TOPIC_ENV",
    "topic_prefix": "FLEETSERVE_TOPIC_PREFIX",
    "log_level": "FLEETSERVE_LOG_LEVEL",
    "store": "FLEETSERVE_STORE",
    # The worker's own, from its table of knobs (config/serving.py).
    **{knob.name: knob.env for knob in KNOBS if knob.env},
}
CONFIG_ENV = "FLEETSERVE_CONFIG"

_FILE_TOP_KEYS = frozenset({"bootstrap", "stage", "group", "worker_id", "log_level"})
_FILE_TOPIC_KEYS = {"file": "topic_file", "env": "topic_env", "prefix": "topic_prefix"}
_GROUP_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]{0,100}$")
_LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


@dataclass
class Layer:
    """Raw values from one source, before validation."""

    origin: str
    values: dict[str, Any] = field(default_factory=dict)
    kafka: dict[str, str] = field(default_factory=dict)


def build_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """The one place settings are parsed. Flags whose value is None count as unset."""
    env = os.environ if env is None else env
    flags = flags or {}
    file_path = config_file or _path_or_none(env.get(CONFIG_ENV))
    layers = [
        load_file_layer(file_path) if file_path else Layer("defaults"),
        env_layer(env),
        flag_layer(flags),
    ]
    return _validate(_merge(layers), file_path)


def load_file_layer(path: Path) -> Layer:
    """Read a TOML config file; relative topic paths resolve against the file's folder."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    layer = Layer(f"config file {path}")
    for key, value in data.items():
        if key in _FILE_TOP_KEYS:
            layer.values[key] = value
        elif key == "store":
            # A folder is relative to the file, like topics; `kafka` names the models topic.
            text = str(value)
            layer.values[key] = text if text == KAFKA_STORE else path.parent / text
        elif key == "kafka" and isinstance(value, dict):
            layer.kafka.update(_kafka_properties(value, layer.origin))
        elif key == "topics" and isinstance(value, dict):
            layer.values.update(_file_topic_values(value, path))
        else:
            raise ConfigError(f"{layer.origin}: unknown key {key!r}")
    return layer


def _file_topic_values(table: Mapping[str, Any], path: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _FILE_TOPIC_KEYS:
            raise ConfigError(f"config file {path}: unknown key 'topics.{key}'")
        values[_FILE_TOPIC_KEYS[key]] = value
    if isinstance(values.get("topic_file"), str):
        values["topic_file"] = path.parent / values["topic_file"]
    return values


def env_layer(env: Mapping[str, str]) -> Layer:
    """FLEETSERVE_* variables; FLEETSERVE_KAFKA_SASL_PASSWORD becomes sasl.password."""
    layer = Layer("environment")
    known = {name: key for key, name in ENV_NAMES.items()}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        if name.startswith(KAFKA_ENV_PREFIX):
            prop = name.removeprefix(KAFKA_ENV_PREFIX).lower().replace("_", ".")
            layer.kafka[prop] = value
        elif name in known:
            layer.values[known[name]] = value
        else:
            raise ConfigError(f"unknown environment variable {name}; known: {sorted(known)}")
    return layer


def flag_layer(flags: Mapping[str, Any]) -> Layer:
    """Command-line flags; ``kafka_options`` holds repeated KEY=VALUE pairs."""
    layer = Layer("command line")
    for key, value in flags.items():
        if value is None or key == "kafka_options":
            continue
        layer.values[key] = value
    for option in flags.get("kafka_options") or ():
        prop, sep, value = str(option).partition("=")
        if not sep or not prop:
            raise ConfigError(f"--kafka-option {option!r}: expected KEY=VALUE")
        layer.kafka[prop.strip()] = value
    return layer


def _kafka_properties(table: Mapping[str, Any], origin: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict | list):
            raise ConfigError(f"{origin}: kafka.{key} must be a scalar")
        props[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return props


def _merge(layers: list[Layer]) -> Layer:
    merged = Layer("merged")
    for layer in layers:
        merged.values.update(layer.values)
        merged.kafka.update(layer.kafka)
    return merged


def _validate(raw: Layer, file_path: Path | None) -> Settings:
    values = raw.values
    stage = _stage(values.get("stage", Stage.REAL.value))
    kafka = dict(raw.kafka)
    bootstrap = str(values.get("bootstrap") or kafka.pop("bootstrap.servers", DEFAULT_BOOTSTRAP))
    kafka.pop("bootstrap.servers", None)
    return Settings(
        kafka=KafkaSettings(validate_bootstrap(bootstrap), kafka),
        stage=stage,
        group_id=_matching("group", values.get("group", f"fleetserve-{stage.value}"), _GROUP_RE),
        worker_id=str(values.get("worker_id") or f"{socket.gethostname()}-{os.getpid()}"),
        topic_file=_path_or_none(values.get("topic_file")),
        topic_env=str(values.get("topic_env", "local")),
        topic_prefix=_matching("topic_prefix", values.get("topic_prefix", ""), _PREFIX_RE),
        log_level=_log_level(values.get("log_level", "INFO")),
        store_dir=_store_dir(values.get("store")),
        store_kafka=str(values.get("store")) == KAFKA_STORE,
        source_file=file_path,
        serving=_serving(values),
    )


def _store_dir(value: Any) -> Path:
    """The build directory: the one named, or the default with ``--store kafka``.

    ``kafka`` is the models topic; a folder of that name is ``./kafka``.
    """
    if not value or str(value) == KAFKA_STORE:
        return DEFAULT_STORE_DIR
    return Path(value)


def _serving(values: Mapping[str, Any]) -> ServingSettings:
    """The serving values that came from env (the worker's own flags apply later)."""
    raw = {knob.name: _from_text(knob, values[knob.name]) for knob in KNOBS if knob.name in values}
    return serving_settings(raw)


def _from_text(knob: Knob, text: Any) -> Any:
    """An environment value as the knob's type: a number, a comma-separated list, text."""
    if knob.kind == "texts":
        return tuple(part.strip() for part in str(text).split(",") if part.strip())
    if knob.kind in ("int", "float"):
        try:
            return int(text) if knob.kind == "int" else float(text)
        except ValueError:
            raise ConfigError(f"{knob.name}: {text!r} is not a number") from None
    return text


def validate_bootstrap(bootstrap: str) -> str:
    """host:port[,host:port...] with real port numbers."""
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    if not servers:
        raise ConfigError("bootstrap: at least one host:port is required")
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"bootstrap: {server!r} is not host:port")
    return ",".join(servers)


def _stage(value: Any) -> Stage:
    try:
        return Stage(str(value))
    except ValueError:
        choices = ", ".join(s.value for s in Stage)
        raise ConfigError(f"stage: {value!r} is not one of {choices}") from None


def _matching(name: str, value: Any, pattern: re.Pattern[str]) -> str:
    text = str(value)
    if not pattern.fullmatch(text):
        raise ConfigError(f"{name}: {text!r} must match {pattern.pattern}")
    return text


def _log_level(value: Any) -> str:
    level = str(value).upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"log_level: {value!r} is not one of {sorted(_LOG_LEVELS)}")
    return level


def _path_or_none(value: Any) -> Path | None:
    return Path(value) if value else None
