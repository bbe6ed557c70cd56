"""Settings of a serving worker, and the one table of what an operator may set and within what.

``ServingSettings`` holds the defaults; ``KNOBS`` holds, for each setting an operator may
change, its flag, environment variable, bounds and help. ``serving_settings`` checks values
against ``KNOBS``, and the CLI builds ``fleetserve worker``'s options from it, so a bound or
a default is written once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from fleetserve.core.facts import LARGEST_MODEL_BYTES
from fleetserve.errors import ConfigError

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
    max_batch: int = 500  # records per pass at first, and the fewest a full pass takes
    # The adaptive pass size (serving/passsize.py): up to max_pass records while passes
    # come back full and finish within pass_budget_ms.
    max_pass: int = 4_000
    pass_budget_ms: int = 250
    poll_timeout_s: float = 0.05
    max_bot_share: float = 0.5  # of the pass, per bot
    max_rows_per_run: int = 256
    max_record_bytes: int = 64 * 1024
    default_top_k: int = 3
    delivery: Delivery = "exactly-once"
    ops_host: str = "127.0.0.1"
    ops_port: int = 9464  # 0 picks a free port
    load_threads: int = 2
    # Kafka's default is 45 s; a dead worker's partitions should move sooner than that.
    session_timeout_ms: int = 10_000
    # None: kafka/devbroker.py's EMPTY_FETCH_WAIT_MS (why it is low is written there).
    fetch_wait_max_ms: int | None = None
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
    disk_cache: str | None = None
    disk_cache_bytes: int = 4 * GIB
    model_fetch_timeout_ms: int = 5_000
    # Per-bot statistics: each worker flushes its summaries at most this often (ms).
    stats_interval_ms: int = 2_000
    # Test-only fault injection: the worker SIGKILLs itself on a query containing this text.
    fault_kill_on_text: str | None = None

    @property
    def max_rows_per_bot(self) -> int:
        return self.rows_per_bot(self.max_batch)

    def rows_per_bot(self, pass_size: int) -> int:
        """One bot's fair share of a pass of ``pass_size`` records."""
        return max(1, int(pass_size * self.max_bot_share))

    @property
    def disk_cache_path(self) -> str:
        return self.disk_cache or f"{self.state_dir}/models"


Kind = Literal["int", "float", "size", "text", "choice", "texts"]


@dataclass(frozen=True, slots=True)
class Knob:
    """One setting an operator may change: ``--<flag>`` of ``fleetserve worker``.

    ``name`` is the value's key (``ServingSettings`` field, or ``model_memory`` /
    ``max_model_size`` for sizes written like ``2GiB``); ``low``/``high`` bound numbers.
    """

    name: str
    kind: Kind
    help: str
    low: float | None = None
    high: float | None = None
    env: str | None = None
    choices: tuple[str, ...] = ()
    hidden: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def field(self) -> str:
        return _SIZE_FIELDS.get(self.name, self.name)


_SIZE_FIELDS: Final = {
    "model_memory": "model_memory_bytes",
    "max_model_size": "max_model_bytes",
    "disk_cache_size": "disk_cache_bytes",
}

KNOBS: Final = (
    Knob("model_memory", "size", "Budget of the model cache, e.g. 2GiB or 512MiB.",
         env="FLEETSERVE_MODEL_MEMORY"),
    Knob("max_models", "int", "Also cap the cached model count.", low=1,
         env="FLEETSERVE_MAX_MODELS"),
    Knob("load_threads", "int", "Threads that load missed models beside the pass's own, "
         "which loads one itself.", low=1, high=64, env="FLEETSERVE_LOAD_THREADS"),
    Knob("max_model_size", "size", "Refuse snapshots larger than this, e.g. 16MiB (the "
         "default is the factory's largest model).", env="FLEETSERVE_MAX_MODEL_SIZE"),
    Knob("replies_topic", "text", "Publish replies here instead of the declared replies "
         "topic (shadow groups).", env="FLEETSERVE_REPLIES_TOPIC"),
    Knob("reply_to_allow", "texts", "Glob of topics a query's reply_to may name, besides the "
         "replies topic and topics under it (repeatable).", env="FLEETSERVE_REPLY_TO_ALLOW"),
    Knob("ops_port", "int", "Port of /metrics, /livez and /readyz; 0 picks a free one.",
         low=0, high=65535, env="FLEETSERVE_OPS_PORT"),
    Knob("ops_host", "text", "Address the ops endpoints bind to."),
    Knob("delivery", "choice", "exactly-once (transactions) or at-least-once (dedupe by "
         "request_id).", choices=DELIVERIES, env="FLEETSERVE_DELIVERY"),
    Knob("max_batch", "int", "Records per pass at first; passes grow from here under load "
         "(--max-pass) and never shrink below it.", low=1, high=100_000),
    Knob("max_pass", "int", "Most records a pass grows to while passes come back full and "
         "finish within --pass-budget-ms (--max-batch or less: fixed passes).", low=1,
         high=100_000),
    Knob("pass_budget_ms", "int", "A pass longer than this halves the next one's size.",
         low=1, high=60_000),
    Knob("max_bot_share", "float", "Most of a pass one bot may take; the rest of its "
         "partition waits a pass.", low=0.001, high=1.0),
    Knob("session_timeout_ms", "int", "Group session timeout: how soon a dead worker's "
         "partitions move.", low=1_000, high=300_000),
    Knob("retry_max_attempts", "int", "Tries of a transiently failing query, the first "
         "included, before it is dead-lettered as retries_exhausted.", low=1, high=100),
    Knob("retry_base_ms", "int", "First retry delay; it doubles per attempt, with jitter.",
         low=1, high=3_600_000),
    Knob("retry_max_ms", "int", "Longest retry delay.", low=1, high=3_600_000),
    Knob("fetch_wait_max_ms", "int", "Longest the broker may hold an empty fetch; bounds "
         "added latency on brokers that do not answer early (default 5).", low=1, high=500),
    Knob("poison_after", "int", "Dead-letter a record as poison, unprocessed, once a worker "
         "died this many times while processing it.", low=1, high=100),
    Knob("state_dir", "text", "Directory that outlives the process, for the pass in flight.",
         env="FLEETSERVE_STATE_DIR"),
    Knob("disk_cache", "text", "With --store kafka: folder of fetched snapshots, which workers "
         "on one machine may share (default <state-dir>/models).", env="FLEETSERVE_DISK_CACHE"),
    Knob("disk_cache_size", "size", "Budget of the disk cache, e.g. 4GiB.",
         env="FLEETSERVE_DISK_CACHE_SIZE"),
    Knob("model_fetch_timeout_ms", "int", "With --store kafka: longest wait for a snapshot "
         "from the models topic before its queries go to the retry tier.", low=100,
         high=600_000),
    Knob("stats_interval_ms", "int", "Flush per-bot statistics to the bot-stats topic at "
         "most this often.", low=100, high=600_000),
    Knob("fault_kill_on_text", "text", "Test only: SIGKILL the worker on this query text.",
         hidden=True),
)  # fmt: skip
KNOB_NAMES: Final = frozenset(knob.name for knob in KNOBS)


def default_of(knob: Knob) -> Any:
    """The knob's default, as an operator writes it (a size as ``2GiB``)."""
    value = getattr(ServingSettings(), knob.field)
    return format_size(value) if knob.kind == "size" else value


def format_size(size: int) -> str:
    """Bytes as the largest binary unit that divides them: ``2GiB``, ``16MiB``, ``1000``."""
    for exponent, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if size % 1024**exponent == 0:
            return f"{size // 1024**exponent}{unit}"
    return str(size)


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
    """``base`` with every non-None value of ``values`` (knob names) applied and checked."""
    unknown = set(values) - KNOB_NAMES - {f.name for f in dataclasses.fields(ServingSettings)}
    if unknown:
        raise ConfigError(f"unknown serving settings: {sorted(unknown)}")
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        knob = _KNOBS_BY_NAME.get(name)
        field = knob.field if knob is not None else name
        changes[field] = parse_size(value) if knob is not None and knob.kind == "size" else value
    settings = dataclasses.replace(base or ServingSettings(), **changes)
    _check(settings)
    return settings


_KNOBS_BY_NAME: Final = {knob.name: knob for knob in KNOBS}


def _check(settings: ServingSettings) -> None:
    problems = [
        f"{knob.flag.lstrip('-').replace('-', ' ')} must be {_range(knob)}"
        for knob in KNOBS
        if not _within(knob, getattr(settings, knob.field))
    ]
    rules = [
        (settings.model_memory_bytes > 0, "model memory must be positive"),
        (settings.max_model_bytes > 0, "max model size must be positive"),
        (settings.delivery in DELIVERIES, f"delivery must be one of {', '.join(DELIVERIES)}"),
        (
            settings.retry_base_ms <= settings.retry_max_ms,
            "need retry base ms <= retry max ms",
        ),
        (settings.disk_cache_bytes > 0, "disk cache size must be positive"),
    ]
    problems += [message for ok, message in rules if not ok]
    if problems:
        raise ConfigError("; ".join(problems))


def _within(knob: Knob, value: Any) -> bool:
    if value is None or knob.kind not in ("int", "float"):
        return True
    return (knob.low is None or value >= knob.low) and (knob.high is None or value <= knob.high)


def _range(knob: Knob) -> str:
    if knob.high is None:
        return f">= {knob.low:g}" if knob.low is not None else "valid"
    return f"{knob.low:g}..{knob.high:g}"
