"""Settings of a serving worker: model memory, batching, delivery and the ops port."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from fleetserve.errors import ConfigError
from fleetserve.models.config import LARGEST_MODEL_BYTES

Delivery = Literal["exactly-once", "at-least-once"]
DELIVERIES: Final = ("exactly-once", "at-least-once")
GIB: Final = 1024**3

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])(i)?)?B?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ServingSettings:
    """How one worker serves. Defaults fit the 2-core machine in docs/architecture.md."""

    model_memory_bytes: int = 2 * GIB
    # No snapshot larger than the factory's largest model is loaded (manifest, bytes and
    # declared tensors are checked before a session exists).
    max_model_bytes: int = LARGEST_MODEL_BYTES
    max_models: int | None = None
    replies_topic: str | None = None  # None: the declared replies topic
    max_batch: int = 500
    poll_timeout_s: float = 0.05
    max_bot_share: float = 0.5  # of max_batch, per bot and pass
    max_rows_per_run: int = 256
    max_record_bytes: int = 64 * 1024
    default_top_k: int = 3
    delivery: Delivery = "exactly-once"
    ops_host: str = "127.0.0.1"
    ops_port: int = 9464  # 0 picks a free port
    load_threads: int = 2
    # Kafka's default is 45 s; a dead worker's partitions should move sooner than that.
    session_timeout_ms: int = 10_000
    # How long the broker may hold an empty fetch. Apache Kafka answers as soon as data
    # arrives, so this only costs idle fetches; Tansu holds the fetch for all of it (seen
    # here), so it adds up to this much to a query's latency.
    fetch_wait_max_ms: int = 5
    # The retry tier: tries in all (the first included), and the backoff between them.
    retry_max_attempts: int = 5
    retry_base_ms: int = 500
    retry_max_ms: int = 30_000
    # The crash-loop breaker: a record under way in this many worker deaths is poison.
    poison_after: int = 2
    # Survives the process (a supervisor's directory, a pod's emptyDir): the pass in flight.
    state_dir: str = ".fleetserve"
    # Glob patterns of topics a query's reply_to may name, beside the replies topic and
    # topics under it; compacted and fleetserve control topics are refused whatever.
    reply_to_allow: tuple[str, ...] = ()
    # With `--store kafka`: the disk cache of fetched snapshots (None: <state_dir>/models),
    # its budget, and how long a fetch from the models topic may take before the query
    # goes to the retry tier.
    disk_cache_dir: str | None = None
    disk_cache_bytes: int = 4 * GIB
    model_fetch_timeout_ms: int = 5_000
    # Test-only fault injection: the worker SIGKILLs itself on a query containing this text.
    fault_kill_on_text: str | None = None

    @property
    def max_rows_per_bot(self) -> int:
        return max(1, int(self.max_batch * self.max_bot_share))

    @property
    def disk_cache_path(self) -> str:
        return self.disk_cache_dir or f"{self.state_dir}/models"


def parse_size(text: str | int) -> int:
    """``2GiB`` (binary), ``1.5GB`` (decimal) or plain bytes."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if match is None:
        raise ConfigError(f"{text!r} is not a size such as 2GiB, 512MiB or 1000000")
    number, prefix, binary = match.groups()
    exponent = "KMGT".index(prefix.upper()) + 1 if prefix else 0
    return int(float(number) * (1024 if binary else 1000) ** exponent)


def serving_settings(
    values: Mapping[str, Any], base: ServingSettings | None = None
) -> ServingSettings:
    """``base`` with every non-None value of ``values`` applied and checked."""
    known = {f.name for f in dataclasses.fields(ServingSettings)} | {
        "model_memory",
        "max_model_size",
        "disk_cache_size",
    }
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown serving settings: {sorted(unknown)}")
    changes = {key: value for key, value in values.items() if value is not None}
    if "model_memory" in changes:
        changes["model_memory_bytes"] = parse_size(changes.pop("model_memory"))
    if "max_model_size" in changes:
        changes["max_model_bytes"] = parse_size(changes.pop("max_model_size"))
    if "disk_cache_size" in changes:
        changes["disk_cache_bytes"] = parse_size(changes.pop("disk_cache_size"))
    settings = dataclasses.replace(base or ServingSettings(), **changes)
    _check(settings)
    return settings


def _check(settings: ServingSettings) -> None:
    rules = [
        (settings.model_memory_bytes > 0, "model memory must be positive"),
        (settings.max_model_bytes > 0, "max model size must be positive"),
        (settings.max_models is None or settings.max_models >= 1, "max models must be >= 1"),
        (1 <= settings.max_batch <= 100_000, "max batch must be 1..100000"),
        (0 < settings.max_bot_share <= 1, "max bot share must be in (0, 1]"),
        (settings.delivery in DELIVERIES, f"delivery must be one of {', '.join(DELIVERIES)}"),
        (1_000 <= settings.session_timeout_ms <= 300_000, "session timeout must be 1000..300000"),
        (1 <= settings.retry_max_attempts <= 100, "retry max attempts must be 1..100"),
        (
            1 <= settings.retry_base_ms <= settings.retry_max_ms <= 3_600_000,
            "need 1 <= retry base ms <= retry max ms <= 3600000",
        ),
        (0 <= settings.ops_port < 65536, "ops port must be 0..65535"),
        (1 <= settings.fetch_wait_max_ms <= 500, "fetch wait max ms must be 1..500"),
        (1 <= settings.poison_after <= 100, "poison after must be 1..100"),
        (settings.disk_cache_bytes > 0, "disk cache size must be positive"),
        (
            100 <= settings.model_fetch_timeout_ms <= 600_000,
            "model fetch timeout ms must be 100..600000",
        ),
    ]
    problems = [message for ok, message in rules if not ok]
    if problems:
        raise ConfigError("; ".join(problems))
