"""fleetserve: serve thousands of small per-chatbot intent models behind Apache Kafka.

The Python API for upstream services and tools; everything else is internal and may move.

* Ask: :class:`FleetClient` sends queries and waits for each one's reply or dead letter
  (an :class:`Outcome`); :func:`make_query` builds a valid query v1 for any producer.
* Configure: :class:`Settings` and :class:`KafkaSettings`, usually from
  :func:`build_settings` (defaults < TOML file < environment < flags), and :class:`Stage`.
* Speak the contracts: :class:`MessageKind` with :func:`decode`, :func:`encode` and
  :func:`validate` over the JSON Schemas in ``schemas/``.
* Handle failures: the one error hierarchy (``fleetserve.errors``), each class with its
  disposition: fatal, retriable or dead-letter.

Package policy: every ``__init__.py`` but this one is a docstring only (what the package is
for and what each module does); code imports names from the module that defines them.
"""

from fleetserve.client.client import FleetClient, Outcome
from fleetserve.client.query import make_query
from fleetserve.config.settings import KafkaSettings, Settings, Stage
from fleetserve.config.sources import build_settings
from fleetserve.contracts.codec import decode, encode, validate
from fleetserve.contracts.schemas import MessageKind
from fleetserve.core.facts import VERSION
from fleetserve.errors import (
    ConfigError,
    ContractError,
    DeadLetterError,
    Disposition,
    FatalError,
    FleetserveError,
    KafkaUnavailable,
    QueryFailed,
    ReplyTimeout,
    RetriableError,
    classify,
)

__version__ = VERSION

__all__ = [
    "ConfigError",
    "ContractError",
    "DeadLetterError",
    "Disposition",
    "FatalError",
    "FleetClient",
    "FleetserveError",
    "KafkaSettings",
    "KafkaUnavailable",
    "MessageKind",
    "Outcome",
    "QueryFailed",
    "ReplyTimeout",
    "RetriableError",
    "Settings",
    "Stage",
    "__version__",
    "build_settings",
    "classify",
    "decode",
    "encode",
    "make_query",
    "validate",
]
