"""TypedDicts of the v1 message shapes, for mypy; the JSON Schemas are the contract."""

# No `from __future__ import annotations`: on Python 3.11 it hides NotRequired
# from TypedDict, which would then report every key as required.
from typing import Final, Literal, NotRequired, TypedDict

Stage = Literal["dev", "beta", "real"]
Quantization = Literal["int4", "int8", "fp32"]
DeploymentAction = Literal["deploy", "promote", "rollback"]
GuardMetric = Literal["fallback_rate", "mean_confidence", "dead_letter_rate", "inference_ms"]
Phase = Literal["decode", "route", "load", "infer", "publish"]
DeadLetterReason = Literal[
    "decode",
    "schema",
    "too_large",
    "unknown_bot",
    "no_deployment",
    "model_missing",
    "model_corrupt",
    "model_load_failed",
    "inference_error",
    "deadline_exceeded",
    "retries_exhausted",
    "publish_failed",
    "internal_error",
    "poison",
]

DEFAULT_STAGE: Final[Stage] = "real"
"""A query without ``stage`` is for the real deployment."""
DEFAULT_INCLUDE_QUERY_TEXT: Final = True
"""A stage deployment without ``include_query_text`` puts the query text in replies."""


class ReplyTo(TypedDict):
    topic: str
    partition: NotRequired[int]


class TraceContext(TypedDict):
    traceparent: str
    tracestate: NotRequired[str]
    baggage: NotRequired[str]


class QueryV1(TypedDict):
    version: Literal[1]
    request_id: str
    bot_id: str
    text: str
    sent_at_ms: int
    stage: NotRequired[Stage]
    deadline_ms: NotRequired[int]
    ttl_ms: NotRequired[int]
    reply_to: NotRequired[ReplyTo]
    trace: NotRequired[TraceContext]
    top_k: NotRequired[int]


class ReplyModel(TypedDict):
    version: str
    sha256: str
    quantization: Quantization


class ScoredIntent(TypedDict):
    intent: str
    score: float


class Timings(TypedDict):
    queued_ms: float
    inference_ms: float
    total_ms: float


class WorkerRef(TypedDict):
    id: str
    group: str


class ReplySource(TypedDict):
    topic: str
    partition: int
    offset: int
    # Optional so replies written before it existed still validate; absent means 1.
    attempt: NotRequired[int]


class ReplyV1(TypedDict):
    version: Literal[1]
    request_id: str
    bot_id: str
    stage: Stage
    model: ReplyModel
    intent: str
    confidence: float
    top_k: list[ScoredIntent]
    fallback: bool
    text: str | None
    timings: Timings
    worker: WorkerRef
    source: ReplySource
    produced_at_ms: int
    trace: NotRequired[TraceContext]


class RecordHeader(TypedDict):
    name: str
    value_b64: str | None


class OriginalRecord(TypedDict):
    value_b64: str | None
    key_b64: str | None
    headers: list[RecordHeader]
    timestamp_ms: int | None
    omitted: str | None


class DeadLetterSource(TypedDict):
    topic: str
    partition: int
    offset: int
    consumer_group: str


class DeadLetterModel(TypedDict):
    version: str
    sha256: str
    stage: Stage


class DeadLetterV1(TypedDict):
    version: Literal[1]
    reason: DeadLetterReason
    message: str
    error_type: str
    phase: Phase
    original: OriginalRecord
    source: DeadLetterSource
    bot_id: str | None
    request_id: str | None
    stage: Stage | None
    model: DeadLetterModel | None
    deadline_ms: int | None
    attempts: int
    replay_attempt: int
    worker: WorkerRef
    first_failed_at_ms: int
    last_failed_at_ms: int
    dead_lettered_at_ms: int


class SnapshotLocation(TypedDict):
    """Where the models topic holds a snapshot: its first record's coordinates."""

    topic: str
    partition: int
    offset: int


class PreviousModel(TypedDict):
    model_version: str
    sha256: str
    location: NotRequired[SnapshotLocation]


class StageDeployment(TypedDict):
    model_version: str
    sha256: str
    location: NotRequired[SnapshotLocation]
    deployed_at_ms: int
    previous: list[PreviousModel]
    include_query_text: NotRequired[bool]


class Stages(TypedDict, total=False):
    dev: StageDeployment
    beta: StageDeployment
    real: StageDeployment


class GuardCheck(TypedDict):
    metric: GuardMetric
    new: float
    old: float
    new_n: int
    old_n: int
    p_value: float | None
    limit: float
    breached: bool


class RollbackEvidence(TypedDict):
    stage: Stage
    rolled_back_version: str
    restored_version: str
    test: str
    checks: list[GuardCheck]
    observed_from_ms: int
    observed_to_ms: int


class DeploymentV1(TypedDict):
    version: Literal[1]
    bot_id: str
    stages: Stages
    action: DeploymentAction
    actor: str
    updated_at_ms: int
    evidence: NotRequired[RollbackEvidence]


class StatsWorker(TypedDict):
    id: str
    group: str
    started_at_ms: int


class ConfidenceStats(TypedDict):
    sum: float
    sum_sq: float
    histogram: list[int]


class MarginStats(TypedDict):
    histogram: list[int]


class LatencyStats(TypedDict):
    sum: float
    histogram: list[int]


class InferenceStats(TypedDict):
    sum: float
    sum_sq: float


class DeadLettersByReason(TypedDict, total=False):
    decode: int
    schema: int
    too_large: int
    unknown_bot: int
    no_deployment: int
    model_missing: int
    model_corrupt: int
    model_load_failed: int
    inference_error: int
    deadline_exceeded: int
    retries_exhausted: int
    publish_failed: int
    internal_error: int
    poison: int


class BotStatsV1(TypedDict):
    version: Literal[1]
    bot_id: str
    model_version: str | None
    stage: Stage | None
    window_start_ms: int
    window_end_ms: int
    worker: StatsWorker
    seq: int
    replies: int
    fallbacks: int
    confidence: ConfidenceStats
    margin: MarginStats
    latency_ms: LatencyStats
    inference_ms: InferenceStats
    dead_letters: DeadLettersByReason
