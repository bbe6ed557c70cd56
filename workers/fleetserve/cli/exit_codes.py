"""Documented exit codes, so scripts and compose can tell failures apart."""

from __future__ import annotations

from fleetserve.errors import (
    BrokerError,
    ConfigError,
    FleetserveError,
    KafkaUnavailable,
    TopicDriftError,
    TopicSpecError,
)

OK = 0
FAILURE = 1
BAD_CONFIG = 2  # also click's code for a usage error
KAFKA_UNAVAILABLE = 3
TOPIC_DRIFT = 4
BROKER_FAILED = 5

_CODES: tuple[tuple[type[FleetserveError], int], ...] = (
    (ConfigError, BAD_CONFIG),
    (TopicSpecError, BAD_CONFIG),
    (KafkaUnavailable, KAFKA_UNAVAILABLE),
    (TopicDriftError, TOPIC_DRIFT),
    (BrokerError, BROKER_FAILED),
)


def exit_code_for(exc: FleetserveError) -> int:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return FAILURE
