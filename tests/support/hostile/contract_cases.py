"""Hostile records that break the query contract (``schema``) or the size cap (``too_large``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from hypothesis import strategies as st

from support.hostile.cases import (
    BOT_ID,
    EPOCH_MAX,
    EPOCH_MIN,
    GOOD_TRACEPARENT,
    HEADERS,
    INT64,
    NOT_INTEGER,
    NOT_OBJECT,
    NOT_STRING,
    PATH_LIKE,
    PROPERTIES,
    REQUIRED,
    SCHEMA,
    STAGES,
    TEXT_MAX,
    TOO_LARGE,
    TOPIC,
    TRACEPARENT,
    TTL_MAX,
    UNICODE,
    WORDS,
    Case,
    Fleet,
    case_of,
    dumps,
    json_values,
    repeat_bytes,
    repeat_to,
    sized,
    valid_query,
)

# -- schema: an object that breaks the query contract -------------------------------------------


@st.composite
def missing_fields(draw: st.DrawFn, fleet: Fleet) -> Case:
    query = draw(valid_query(fleet))
    key = query["bot_id"].encode()
    gone = draw(st.sets(st.sampled_from(REQUIRED), min_size=1))
    for name in gone:
        del query[name]
    label = "all" if len(gone) == len(REQUIRED) else "+".join(sorted(gone))
    raw = dumps(query)
    return case_of(f"missing required: {label}", SCHEMA, query, raw, key, draw(HEADERS))


INTEGER_FIELDS: Final = ("version", "sent_at_ms", "deadline_ms", "ttl_ms", "top_k")
STRING_FIELDS: Final = ("request_id", "bot_id", "text", "stage")
NESTED_FIELDS: Final = {
    "reply_to.topic": NOT_STRING,
    "reply_to.partition": NOT_INTEGER,
    "trace.traceparent": NOT_STRING,
    "trace.tracestate": NOT_STRING,
    "trace.baggage": NOT_STRING,
}
TYPED_FIELDS: Final = (*INTEGER_FIELDS, *STRING_FIELDS, "reply_to", "trace", *NESTED_FIELDS)


def _with_nested(query: dict[str, Any], fleet: Fleet, path: str, value: Any) -> None:
    parent, child = path.split(".")
    if parent == "reply_to":
        query["reply_to"] = {"topic": fleet.replies_topic, child: value}
    else:
        query["trace"] = {"traceparent": GOOD_TRACEPARENT, child: value}


@st.composite
def wrong_types(draw: st.DrawFn, fleet: Fleet, name: str) -> Case:
    """Field ``name`` given a JSON value of another type (1.0 counts as an integer)."""
    query = draw(valid_query(fleet))
    key = query["bot_id"].encode()
    if name in INTEGER_FIELDS:
        query[name] = draw(NOT_INTEGER)
    elif name in STRING_FIELDS:
        query[name] = draw(NOT_STRING)
    elif name in NESTED_FIELDS:
        _with_nested(query, fleet, name, draw(NESTED_FIELDS[name]))
    else:
        query[name] = draw(NOT_OBJECT)
    return case_of(f"wrong type: {name}", SCHEMA, query, dumps(query), key, draw(HEADERS))


def _outside(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(INT64[0], low - 1) | st.integers(high + 1, INT64[1])


def _bad_topic() -> st.SearchStrategy[str]:
    listed = st.sampled_from([t for t in PATH_LIKE if not TOPIC.fullmatch(t)])
    return listed | st.text(UNICODE, max_size=300).filter(lambda t: not TOPIC.fullmatch(t))


def _bad_traceparent() -> st.SearchStrategy[str]:
    good = GOOD_TRACEPARENT
    known = [
        "ff" + good[2:],
        "00-" + "0" * 32 + good[35:],
        good[:36] + "0" * 16 + "-01",
        good.upper(),
        good + "-",
        good[:-1],
        good + "\n",
        "",
    ]
    generated = st.text(UNICODE, max_size=60).filter(lambda t: not TRACEPARENT.fullmatch(t))
    return st.sampled_from(known) | generated


def long_text(length: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.builds(repeat_to, st.text(UNICODE, min_size=1, max_size=8), length)


def _in_trace(name: str) -> Callable[[str], dict[str, Any]]:
    return lambda value: {"trace": {"traceparent": GOOD_TRACEPARENT, name: value}}


OUT_OF_RANGE: Final[dict[str, Callable[[Fleet], st.SearchStrategy[dict[str, Any]]]]] = {
    "empty text": lambda _f: st.just({"text": ""}),
    "empty request_id": lambda _f: st.just({"request_id": ""}),
    "request_id too long": lambda _f: long_text(st.integers(129, 400)).map(
        lambda t: {"request_id": t}
    ),
    "sent_at_ms out of range": lambda _f: _outside(EPOCH_MIN, EPOCH_MAX).map(
        lambda n: {"sent_at_ms": n}
    ),
    "deadline_ms out of range": lambda _f: _outside(EPOCH_MIN, EPOCH_MAX).map(
        lambda n: {"deadline_ms": n}
    ),
    "ttl_ms out of range": lambda _f: _outside(1, TTL_MAX).map(lambda n: {"ttl_ms": n}),
    "top_k out of range": lambda _f: _outside(1, 20).map(lambda n: {"top_k": n}),
    "unknown stage": lambda _f: (
        st.text(UNICODE, max_size=10).filter(lambda s: s not in STAGES).map(lambda s: {"stage": s})
    ),
    "deadline_ms and ttl_ms": lambda f: st.just(
        {"deadline_ms": f.now_ms + 600_000, "ttl_ms": 600_000}
    ),
    "unknown field": lambda _f: st.tuples(
        st.text(UNICODE, max_size=12).filter(lambda n: n not in PROPERTIES), json_values(3)
    ).map(lambda pair: {pair[0]: pair[1]}),
    "reply_to without topic": lambda _f: st.just({"reply_to": {"partition": 0}}),
    "reply_to bad topic": lambda _f: _bad_topic().map(lambda t: {"reply_to": {"topic": t}}),
    "reply_to bad partition": lambda f: _outside(0, 2**31 - 1).map(
        lambda p: {"reply_to": {"topic": f.replies_topic, "partition": p}}
    ),
    "reply_to extra field": lambda f: st.just({"reply_to": {"topic": f.replies_topic, "key": "x"}}),
    "trace without traceparent": lambda _f: st.just({"trace": {"tracestate": "a=b"}}),
    "trace bad traceparent": lambda _f: _bad_traceparent().map(
        lambda t: {"trace": {"traceparent": t}}
    ),
    "tracestate too long": lambda _f: long_text(st.integers(513, 1500)).map(
        _in_trace("tracestate")
    ),
    "baggage too long": lambda _f: long_text(st.integers(8193, 9000)).map(_in_trace("baggage")),
}


@st.composite
def out_of_range(draw: st.DrawFn, fleet: Fleet, kind: str) -> Case:
    query = draw(valid_query(fleet))
    key = query["bot_id"].encode()
    query.update(draw(OUT_OF_RANGE[kind](fleet)))
    case = case_of(f"out of range: {kind}", SCHEMA, query, dumps(query), key, draw(HEADERS))
    return sized(fleet, case)


@st.composite
def unsupported_version(draw: st.DrawFn, fleet: Fleet) -> Case:
    query = draw(valid_query(fleet))
    query["version"] = draw(
        st.integers(*INT64).filter(lambda v: v != 1)
        | st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != 1)
    )
    key = query["bot_id"].encode()
    return case_of("unsupported version", SCHEMA, query, dumps(query), key, draw(HEADERS))


@st.composite
def text_too_long(draw: st.DrawFn, fleet: Fleet) -> Case:
    query = draw(valid_query(fleet))
    query["text"] = draw(long_text(st.integers(TEXT_MAX + 1, 12_000)))
    key = query["bot_id"].encode()
    return sized(fleet, case_of("text over 2000", SCHEMA, query, dumps(query), key, draw(HEADERS)))


@st.composite
def bad_bot_id(draw: st.DrawFn, fleet: Fleet, bot: str | None = None) -> Case:
    """``bot`` (or a generated string off the pattern) as bot_id: path-like, wrong case, long."""
    query = draw(valid_query(fleet))
    if bot is None:
        bot = draw(st.text(UNICODE, max_size=80).filter(lambda s: not BOT_ID.fullmatch(s)))
    query["bot_id"] = bot
    keys = [bot.encode(), query["request_id"].encode(), fleet.deployed[0].encode()]
    key = draw(st.sampled_from(keys))
    raw = dumps(query)
    return case_of("bad bot_id (path-like, case, length)", SCHEMA, query, raw, key, draw(HEADERS))


def near_keys(bot: str, fleet: Fleet) -> list[bytes | None]:
    """Record keys that are almost, or not at all, the bot id."""
    mine = bot.encode()
    others = [other.encode() for other in sorted(fleet.known) if other != bot]
    return [
        *(None, b"", mine.upper(), mine + b" ", b" " + mine, mine + b"\x00", b"../" + mine),
        *(mine + b"\n", mine + b"\xff", bot.encode("utf-16"), *others),
    ]


@st.composite
def key_mismatch(draw: st.DrawFn, fleet: Fleet, pick: int | None = None) -> Case:
    """The ``pick``-th of :func:`near_keys` as the record key, or generated bytes."""
    query = draw(valid_query(fleet))
    mine = query["bot_id"].encode()
    if pick is not None:
        key = near_keys(query["bot_id"], fleet)[pick]
    else:
        key = draw(st.binary(max_size=24).filter(lambda k: k != mine))
    kind = "null key" if key is None else "empty key" if key == b"" else "other key"
    return case_of(f"key is not bot_id: {kind}", SCHEMA, query, dumps(query), key, draw(HEADERS))


@st.composite
def reply_to_control_topic(draw: st.DrawFn, fleet: Fleet) -> Case:
    query = draw(valid_query(fleet))
    query["reply_to"] = {"topic": draw(st.sampled_from(fleet.control_topics))}
    if draw(st.booleans()):
        query["reply_to"]["partition"] = 0
    key = query["bot_id"].encode()
    return case_of("reply_to a control topic", SCHEMA, query, dumps(query), key, draw(HEADERS))


# -- too_large: over the worker's record cap --------------------------------------------------


def pad(raw: bytes, key: bytes | None, size: int, draw: st.DrawFn) -> bytes:
    """``raw`` with JSON whitespace spread before and after it, to ``size`` with the key."""
    room = size - len(raw) - len(key or b"")
    assert room >= 0, (size, len(raw))
    before = draw(st.integers(0, room))
    ws = draw(st.sampled_from([b" ", b"\n", b"\t", b"\r\n"]))
    padding = repeat_bytes(ws, room)
    return padding[:before] + raw + padding[before:]


TOO_LARGE_KINDS: Final = ("huge text", "padded valid query", "binary", "huge key")


@st.composite
def too_large(draw: st.DrawFn, fleet: Fleet, kind: str) -> Case:
    cap = fleet.max_record_bytes
    size = draw(st.integers(cap + 1, cap + 64) | st.integers(cap + 1, 4 * cap))
    query = draw(valid_query(fleet))
    key: bytes | None = query["bot_id"].encode()
    if kind == "huge text":
        query["text"] = ""
        room = size - len(dumps(query)) - len(key or b"")
        query["text"] = repeat_to(draw(WORDS), room)
        raw = dumps(query)
    elif kind == "padded valid query":
        raw = pad(dumps(query), key, size, draw)
    elif kind == "binary":
        key = draw(st.none() | st.just(key))
        raw = repeat_bytes(draw(st.binary(min_size=1, max_size=64)), size - len(key or b""))
    else:
        raw = dumps(query)
        key = repeat_bytes(draw(st.binary(min_size=1, max_size=8)), size - len(raw))
    case = case_of(f"too large: {kind}", TOO_LARGE, query, raw, key, draw(HEADERS))
    assert case.size == size > cap
    return case
