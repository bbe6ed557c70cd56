"""What a replay may send and what it sends: pure decisions over decoded dead letters.

The order of the checks is the order an operator reads the verdicts in: not selected by
the filters (silent), held back (malformed input), already replayed (the ledger, or an
earlier duplicate in this run), refused (the loop guard), and finally replayed.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Final

import orjson

from fleetserve.core.facts import REPLAY_HEADER_PREFIX, RETRY_HEADER_PREFIX
from fleetserve.core.records import Headers, InboundRecord
from fleetserve.deadletters.headers import REPLAY_ATTEMPT, REPLAY_OF
from fleetserve.deadletters.operators.filters import DeadLetterFilter
from fleetserve.deadletters.operators.records import DeadLetterRecord
from fleetserve.deadletters.reasons import DECODE, SCHEMA, TOO_LARGE
from fleetserve.kafka.headers import without

MALFORMED_REASONS: Final = frozenset({DECODE, SCHEMA, TOO_LARGE})
"""The same bytes fail the same way: replayed only when ``--reason`` names them."""
DEFAULT_TTL_MS: Final = 30_000
DEFAULT_MAX_REPLAYS: Final = 3


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """How to replay. ``target_topic`` None: each query's own source topic.

    ``stage``: rewrite the query's stage. ``ttl_ms``: a query that had a deadline gets
    ``now + ttl_ms`` instead (its ``ttl_ms`` is dropped, ``sent_at_ms`` kept), unless
    ``keep_deadline``. ``max_replays``: the loop guard.
    """

    target_topic: str | None = None
    stage: str | None = None
    ttl_ms: int = DEFAULT_TTL_MS
    keep_deadline: bool = False
    max_replays: int = DEFAULT_MAX_REPLAYS


class Verdict(enum.StrEnum):
    REPLAY = "replay"
    ALREADY_REPLAYED = "already replayed"
    REFUSED = "refused"
    HELD_BACK = "held back"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    why: str
    ledger_key: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingQuery:
    """One replayed query as it goes out; ``partition`` None: the partitioner picks by key."""

    topic: str
    partition: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers
    rewritten: bool
    replay_attempt: int
    replay_of: str


@dataclass(frozen=True, slots=True)
class ReplayEvent:
    """A verdict on one selected dead letter; ``sent`` is set for a replay."""

    verdict: Verdict
    item: DeadLetterRecord
    why: str
    sent: OutgoingQuery | None = None


def ledger_key(dead_letter: Mapping[str, Any]) -> str:
    """``<source topic>/<partition>/<offset>#<replay attempt>``: the original query plus which
    replay of it this is, so a query that fails again after a replay can be replayed again
    (its new dead letter carries the next attempt), and two dead letters of one query
    (a duplicate, or a shadow group's) are replayed once."""
    source = dead_letter["source"]
    attempt = int(dead_letter["replay_attempt"]) + 1
    return f"{source['topic']}/{source['partition']}/{source['offset']}#{attempt}"


def decide(
    item: DeadLetterRecord,
    dl_filter: DeadLetterFilter,
    options: ReplayOptions,
    replayed: Set[str],
    sent_this_run: Set[str] = frozenset(),
) -> Decision | None:
    """The verdict on one record, or None when the filters do not select it.

    ``replayed``: ledger keys already replayed. ``sent_this_run``: the dead letters (as
    ``topic/partition/offset``) this run replayed; a query of theirs that failed again
    while the run was still reading is left for a later run, not replayed in a loop.
    """
    dead_letter = item.dead_letter
    if dead_letter is None:
        if not dl_filter.matches_unreadable(item.record.timestamp_ms):
            return None
        return Decision(Verdict.UNREADABLE, f"never replayed: {item.problem}")
    if not dl_filter.matches(dead_letter):
        return None
    origin = replayed_from(dead_letter)
    if origin is not None and origin in sent_this_run:
        return Decision(
            Verdict.ALREADY_REPLAYED,
            f"its query failed again after this run replayed {origin}; replay it later",
        )
    return _verdict(dead_letter, dl_filter, options, replayed)


def _verdict(
    dead_letter: Mapping[str, Any],
    dl_filter: DeadLetterFilter,
    options: ReplayOptions,
    replayed: Set[str],
) -> Decision:
    reason = dead_letter["reason"]
    if reason in MALFORMED_REASONS and not dl_filter.names_reason(reason):
        return Decision(
            Verdict.HELD_BACK,
            f"reason {reason}: the same bytes would fail the same way; "
            f"select it with --reason {reason} to replay it anyway",
        )
    key = ledger_key(dead_letter)
    if key in replayed:
        return Decision(Verdict.ALREADY_REPLAYED, f"ledger key {key}", key)
    done = dead_letter["replay_attempt"]
    if done >= options.max_replays:
        return Decision(
            Verdict.REFUSED,
            f"failed again after {done} replay(s); the loop guard is --max-replays "
            f"{options.max_replays}",
            key,
        )
    return Decision(Verdict.REPLAY, f"replay {done + 1}", key)


def needs_original(dead_letter: Mapping[str, Any]) -> bool:
    """The dead letter left part of its original out (a cap): fetch it from its source."""
    return bool(dead_letter["original"].get("omitted"))


def with_original(dead_letter: Mapping[str, Any], record: InboundRecord) -> dict[str, Any]:
    """``dead_letter`` carrying ``record`` (its source, fetched again) as its original."""
    original = {
        **dead_letter["original"],
        "value_b64": _b64(record.value),
        "key_b64": _b64(record.key),
        "headers": [{"name": n, "value_b64": _b64(v)} for n, v in record.headers],
        "omitted": None,
    }
    return {**dead_letter, "original": original}


def replayed_from(dead_letter: Mapping[str, Any]) -> str | None:
    """The dead letter (``topic/partition/offset``) whose replay this query was, if any."""
    for header in reversed(dead_letter["original"]["headers"]):
        if header["name"] == REPLAY_OF:
            value = _unb64(header["value_b64"])
            return None if value is None else value.decode("utf-8", errors="replace")
    return None


def build_replay(
    dead_letter: Mapping[str, Any], *, replay_of: str, options: ReplayOptions, now_ms: int
) -> OutgoingQuery:
    """The query to send for a dead letter: its original key, value and headers, with the
    stage and deadline rewritten as asked and the replay headers set."""
    original = dead_letter["original"]
    source = dead_letter["source"]
    topic = options.target_topic or source["topic"]
    raw = _unb64(original["value_b64"])
    fresh_deadline = None if options.keep_deadline else now_ms + options.ttl_ms
    rewritten = rewrite_value(raw, stage=options.stage, fresh_deadline_ms=fresh_deadline)
    attempt = int(dead_letter["replay_attempt"]) + 1
    return OutgoingQuery(
        topic=topic,
        # Back where it came from: the bot keeps its partition (and its warm worker) even
        # if the upstream producer's partitioner differs from ours.
        partition=source["partition"] if topic == source["topic"] else None,
        key=_unb64(original["key_b64"]),
        value=raw if rewritten is None else rewritten,
        headers=replay_headers(original["headers"], attempt=attempt, replay_of=replay_of),
        rewritten=rewritten is not None,
        replay_attempt=attempt,
        replay_of=replay_of,
    )


def rewrite_value(
    raw: bytes | None, *, stage: str | None, fresh_deadline_ms: int | None
) -> bytes | None:
    """The value with ``stage`` set and a deadline replaced by ``fresh_deadline_ms``, or None
    when nothing changes (or it is not a JSON object): then the original bytes go out.

    A query without a deadline keeps none: a replay never adds an expiry its sender did
    not ask for. ``deadline_ms`` and ``ttl_ms`` may not both be present (query v1), so
    ``ttl_ms`` goes and ``sent_at_ms`` stays (it still dates the query).
    """
    if raw is None or (stage is None and fresh_deadline_ms is None):
        return None
    try:
        query = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(query, dict):
        return None
    changed = False
    if stage is not None and query.get("stage") != stage:
        query["stage"] = stage
        changed = True
    if fresh_deadline_ms is not None and ("deadline_ms" in query or "ttl_ms" in query):
        query.pop("ttl_ms", None)
        query["deadline_ms"] = fresh_deadline_ms
        changed = True
    return orjson.dumps(query) if changed else None


def replay_headers(
    original: Sequence[Mapping[str, Any]], *, attempt: int, replay_of: str
) -> Headers:
    """The original headers in order, minus earlier replay and retry headers (a replay is a
    new first attempt), plus this replay's attempt number and origin."""
    headers = tuple((h["name"], _unb64(h["value_b64"])) for h in original)
    kept = without(headers, (REPLAY_HEADER_PREFIX, RETRY_HEADER_PREFIX))
    return (*kept, (REPLAY_ATTEMPT, str(attempt).encode()), (REPLAY_OF, replay_of.encode()))


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)
