"""The one exception hierarchy of fleetserve.

Every failure is classified by what the caller must do about it::

    FleetserveError                      base of everything raised on purpose
    ├── FatalError                       stop the process; a human must act
    │   ├── ConfigError                  settings that cannot work (bad value, unknown key)
    │   ├── TopicSpecError               the topic file is invalid; carries file, line and field
    │   ├── TopicDriftError              the cluster's topics differ from the topic file
    │   ├── TopicProvisionError          the cluster refused to create a declared topic
    │   ├── ArtifactError                a snapshot cannot be used (to a CLI: fatal)
    │   │   ├── ArtifactMissing          no such snapshot, or its model file is gone
    │   │   ├── ArtifactCorrupt          the bytes fail their sha256 or are not a usable model
    │   │   └── ArtifactTooLarge         the snapshot is over the reader's size cap
    │   ├── DeploymentRefused            deploy/promote/rollback would publish something unsafe
    │   └── BrokerError                  the embedded broker cannot be used
    │       ├── BrokerBinaryNotFound     the Tansu binary is missing; says how to install it
    │       └── BrokerStartError         the binary exited or never answered metadata
    ├── RetriableError                   transient; back off and try again
    │   ├── KafkaUnavailable             no answer from the bootstrap servers in bounded time
    │   ├── ReplyTimeout                 the client got no reply or dead letter in time
    │   └── ProducerQueueFull            a worker's producer queue never drained: the
    │                                    pass is aborted and read again
    └── DeadLetterError                  one item can never succeed; set it aside with its reason
        ├── ContractError                a message breaks its contract (bad JSON, schema)
        ├── BotInputError                a bot definition cannot be built (empty, bad id, ...);
        │                                the fleet build reports it and goes on with the rest
        └── QueryFailed                  a worker cannot answer one query; ``reason`` is a
                                         dead-letter code, ``phase`` where it failed;
                                         ``retriable=True`` (store briefly unreadable)
                                         makes it RETRIABLE: the retry tier, then
                                         ``retries_exhausted``

A worker sees an ArtifactError for one bot as that bot's problem, not the process's: the
model cache turns it into QueryFailed (``model_missing``, ``model_corrupt``) for the
queries that needed the model, and the rest of the batch is answered.

Each class carries a :class:`Disposition`; :func:`classify` maps any exception,
including confluent-kafka's ``KafkaException``, onto one.
"""

from __future__ import annotations

import enum
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException


class Disposition(enum.Enum):
    """What the caller does with a failure."""

    FATAL = "fatal"
    RETRIABLE = "retriable"
    DEAD_LETTER = "dead_letter"


class FleetserveError(Exception):
    """Base of every error fleetserve raises on purpose."""

    disposition: Disposition = Disposition.FATAL


class FatalError(FleetserveError):
    """The process cannot go on; a human must fix something."""

    disposition = Disposition.FATAL


class ConfigError(FatalError):
    """Settings that cannot work."""


class TopicSpecError(FatalError):
    """The topic file is invalid.

    The message names the file, the line and the field so the fix is one edit away.
    """

    def __init__(self, message: str, *, path: Path | str, line: int | None, field: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {field}: {message}")
        self.path = Path(path)
        self.line = line
        self.field = field
        self.detail = message


class TopicDriftError(FatalError):
    """Existing topics differ from their declaration in a way `topics apply` must not fix."""


class TopicProvisionError(FatalError):
    """The cluster refused to create a declared topic (too few brokers, bad config, ACLs)."""


class ArtifactError(FatalError):
    """A snapshot in the artifact store is missing, incomplete or fails its sha256 check."""


class ArtifactMissing(ArtifactError):
    """No such snapshot in the store, or its model file is gone."""


class ArtifactCorrupt(ArtifactError):
    """The snapshot's bytes fail their sha256, or they are not a model fleetserve can run."""


class ArtifactTooLarge(ArtifactError):
    """The snapshot is larger than the reader allows; it was not read past the cap."""


class DeploymentRefused(FatalError):
    """A deploy, promote or rollback was refused: unknown version, sha256 mismatch, no history."""


class BrokerError(FatalError):
    """The embedded broker cannot be used."""


class BrokerBinaryNotFound(BrokerError):
    """The Tansu binary is missing."""


class BrokerStartError(BrokerError):
    """The broker binary exited early or never answered a metadata request."""


class RetriableError(FleetserveError):
    """A transient failure: back off and try again."""

    disposition = Disposition.RETRIABLE


class KafkaUnavailable(RetriableError):
    """The bootstrap servers gave no answer within the allowed time."""


class ReplyTimeout(RetriableError):
    """No reply and no dead letter arrived for a request within the time asked for.

    Retriable: the query may still be queued behind others, or no worker is running.
    """

    def __init__(self, request_id: str, timeout_s: float) -> None:
        super().__init__(f"no reply or dead letter for request {request_id} within {timeout_s:g}s")
        self.request_id = request_id
        self.timeout_s = timeout_s


class ProducerQueueFull(RetriableError):
    """The producer queue stayed full for the whole wait: the pass is aborted and re-read."""


class DeadLetterError(FleetserveError):
    """This message can never succeed; route it to the dead-letter topic at once.

    ``reason`` is a stable machine-readable code; the message is for humans.
    """

    disposition = Disposition.DEAD_LETTER

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ContractError(DeadLetterError):
    """A message is not valid JSON or breaks its schema."""


class BotInputError(DeadLetterError):
    """A bot's definition cannot be built; ``reason`` is a stable code for the build report."""


class QueryFailed(DeadLetterError):
    """One query cannot be answered; ``reason`` is its dead-letter code, ``phase`` the step."""

    def __init__(self, reason: str, message: str, *, phase: str, retriable: bool = False) -> None:
        super().__init__(reason, message)
        self.phase = phase
        self.retriable = retriable
        if retriable:  # transient (the store briefly unreadable): the retry tier, not yet a DLQ
            self.disposition = Disposition.RETRIABLE


def classify(exc: BaseException) -> Disposition:
    """Map an exception onto what the caller must do about it."""
    if isinstance(exc, FleetserveError):
        return exc.disposition
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return classify_kafka_error(exc.args[0])
    return Disposition.FATAL


def classify_kafka_error(error: KafkaError) -> Disposition:
    """librdkafka says itself whether an error is fatal or worth a retry."""
    if error.fatal():
        return Disposition.FATAL
    if error.retriable():
        return Disposition.RETRIABLE
    return Disposition.FATAL
