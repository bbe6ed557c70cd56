"""Hypothesis strategies for hostile query records, each with the outcome the contract demands.

A :class:`Case` is one Kafka record (key, value, headers) plus what the worker must do with
it: ``"reply"`` or a dead-letter reason. The expectation is derived from how the record was
built, against schemas/query.v1.json and the dead-letter taxonomy
(workers/fleetserve/deadletters/reasons.py), never by running the product code:

* ``too_large``: key plus value is over the worker's cap (64 KiB by default), whatever it is;
* ``decode``: not UTF-8 JSON, or JSON that is not an object (tombstones included);
* ``schema``: an object that breaks the query contract, an unsupported version, a record key
  that is not the bot id, or a reply_to naming a fleetserve control topic;
* ``unknown_bot`` / ``no_deployment`` / ``deadline_exceeded``: valid queries the routing
  refuses;
* ``reply``: everything the contract allows, however odd it looks.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from hypothesis import strategies as st

from fleetserve.deadletters.build import carried_original

REPLY: Final = "reply"
DECODE: Final = "decode"
SCHEMA: Final = "schema"
TOO_LARGE: Final = "too_large"
UNKNOWN_BOT: Final = "unknown_bot"
NO_DEPLOYMENT: Final = "no_deployment"
DEADLINE_EXCEEDED: Final = "deadline_exceeded"

PHASES: Final = {
    DECODE: "decode",
    SCHEMA: "decode",
    TOO_LARGE: "decode",
    UNKNOWN_BOT: "route",
    NO_DEPLOYMENT: "route",
    DEADLINE_EXCEEDED: "route",
}
"""The phase each expected reason is reported in (a deadline long past fails at routing)."""

# The query contract's bounds, restated here so the corpus does not trust the product.
BOT_ID: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
TOPIC: Final = re.compile(r"[a-zA-Z0-9._-]{1,249}")
TRACEPARENT: Final = re.compile(
    r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}"
)
EPOCH_MIN: Final = 946_684_800_000
EPOCH_MAX: Final = 4_102_444_800_000
TTL_MAX: Final = 3_600_000
TEXT_MAX: Final = 2000
REQUEST_ID_MAX: Final = 128
STAGES: Final = ("dev", "beta", "real")
REQUIRED: Final = ("version", "request_id", "bot_id", "text", "sent_at_ms")
PROPERTIES: Final = frozenset(
    (*REQUIRED, "stage", "deadline_ms", "ttl_ms", "reply_to", "trace", "top_k")
)
INT64: Final = (-(2**63), 2**64 - 1)  # what orjson writes

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class Case:
    """One record to produce and the outcome the contract demands for it."""

    category: str
    expected: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    request_id: str | None = None  # the value's request_id, when it carries a string one
    bot_id: str | None = None  # the value's bot_id, when it carries a string one

    @property
    def identity(self) -> tuple[str | None, str | None, tuple[tuple[str, str | None], ...]]:
        """The record as a dead letter's ``original`` spells it: base64 key, value, headers.

        What is over the dead letter's caps (a huge key, say) is left out there, so here too.
        """
        carried, _omitted = carried_original(self.value, self.key, self.headers)
        return (
            carried["key_b64"],
            carried["value_b64"],
            tuple((h["name"], h["value_b64"]) for h in carried["headers"]),
        )

    @property
    def size(self) -> int:
        return len(self.key or b"") + len(self.value or b"")


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Fleet:
    """What the corpus needs to know about the world it is sent into."""

    deployed: tuple[str, ...]  # bots with a real deployment
    beta_only: str  # a bot deployed on beta only
    known: frozenset[str]  # every bot id with any deployment record
    replies_topic: str
    control_topics: tuple[str, ...]
    now_ms: int
    max_record_bytes: int = 64 * 1024
    ids: Iterator[int] = field(default_factory=itertools.count)

    def request_id(self, prefix: str = "h") -> str:
        return f"{prefix}-{next(self.ids)}"


# -- building blocks ---------------------------------------------------------------------------

UNICODE: Final = st.characters(codec="utf-8")  # any scalar value, controls too
WORDS: Final = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789 "), min_size=1)
INVALID_UTF8: Final = (
    b"\x80",  # a lone continuation byte
    b"\xbf\xbf",
    b"\xc0\xaf",  # overlong '/'
    b"\xc1\xbf",
    b"\xe0\x80\xaf",  # overlong, three bytes
    b"\xf0\x80\x80\xaf",  # overlong, four bytes
    b"\xed\xa0\x80",  # an encoded high surrogate
    b"\xed\xbf\xbf",  # an encoded low surrogate
    b"\xed\xa0\xbd\xed\xb8\x80",  # CESU-8 emoji
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80",  # five bytes
    b"\xfe",
    b"\xff",
    b"\xc3",  # truncated two-byte sequence
    b"\xe2\x82",  # truncated three-byte sequence
    b"\xf0\x9f\x98",  # truncated four-byte sequence
    b"caf\xe9",  # Latin-1
)
LONE_SURROGATES: Final = (
    rb"\ud800",
    rb"\udbff",
    rb"\udc00",
    rb"\udfff",
    rb"\ude00\ud83d",  # a pair in the wrong order
    rb"\ud83d\u0041",  # a high surrogate followed by a non-surrogate
    rb"\ud83d\ud83d",
)
PATH_LIKE: Final = (
    "../x",
    "..",
    ".",
    "./x",
    "x/../y",
    "/etc/passwd",
    "../../etc/passwd",
    "a/b",
    "x/",
    "/x",
    "%2e%2e",
    "%2e%2e%2fx",
    "..%2f..%2fetc",
    "..\\x",
    "C:\\x",
    "\\\\server\\share",
    "..;/x",
    "~root",
    "file:///etc/passwd",
    "x\x00",
    "x\n",
    "\nx",
    " x",
    "x ",
    "x\t",
    "X",
    "Bot",
    "-x",
    "_x",
    "x" * 65,
    "",
    "\uff41",  # fullwidth a
    "\u0430",  # Cyrillic a
    "x.y",
    "x:y",
    "x@y",
    "x%00",
    "x\u200b",
    "\u202ex",
)
ODD_TEXTS: Final = (
    "\x00",
    " ",
    "\n",
    "\t\r\n",
    "\x7f",
    "\x1b[31mred\x1b[0m",
    "\u200b",
    "\ufeff",
    "\U0001f642",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\u202eevil",
    "\ufdfa",
    "\U0010ffff",
    "\ufffd",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%s%n%x",
    "{}",
    "\\",
    '"',
    "\u0000\u0001\u0002",
    "null",
)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _repeat_to(chunk: str, length: int) -> str:
    return (chunk * (length // len(chunk) + 1))[:length]


def _repeat_bytes(chunk: bytes, length: int) -> bytes:
    return (chunk * (length // len(chunk) + 1))[:length]


def json_values(max_leaves: int = 6) -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(*INT64)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(UNICODE, max_size=12)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(UNICODE, max_size=6), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


NOT_INTEGER: Final = (
    st.text(UNICODE, max_size=8)
    | st.booleans()
    | st.none()
    | st.lists(st.integers(0, 9), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
)
NOT_STRING: Final = (
    st.integers(*INT64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
    | st.lists(st.text(max_size=3), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)
)
NOT_OBJECT: Final = (
    st.text(UNICODE, max_size=8)
    | st.integers(*INT64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
    | st.lists(st.integers(0, 9), max_size=2)
)


def headers_strategy() -> st.SearchStrategy[Headers]:
    """0-3 headers: any unicode name (no NUL: librdkafka names are C strings), opaque bytes.

    Names under ``fleetserve_`` are left out: the worker reads its own retry and replay
    headers, which a separate test feeds hostile values.
    """
    names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=16)
    values = (
        st.none()
        | st.binary(max_size=32)
        | st.sampled_from(INVALID_UTF8).map(lambda bad: b"v" + bad)
    )
    pairs = st.tuples(names.filter(lambda n: not n.startswith("fleetserve_")), values)
    return st.lists(pairs, max_size=3).map(tuple)


HEADERS: Final = headers_strategy()


def valid_traceparent() -> st.SearchStrategy[str]:
    def hex_(size: int) -> st.SearchStrategy[str]:
        return st.text(st.sampled_from("0123456789abcdef"), min_size=size, max_size=size)

    return st.builds(
        lambda *parts: "-".join(parts),
        hex_(2).filter(lambda v: v != "ff"),
        hex_(32).filter(lambda t: t != "0" * 32),
        hex_(16).filter(lambda p: p != "0" * 16),
        hex_(2),
    )


GOOD_TRACEPARENT: Final = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"


@st.composite
def valid_query(draw: st.DrawFn, fleet: Fleet, bot: str | None = None) -> dict[str, Any]:
    """A plain valid query for a deployed bot (or ``bot``), with a unique request id."""
    return {
        "version": 1,
        "request_id": fleet.request_id(),
        "bot_id": bot if bot is not None else draw(st.sampled_from(fleet.deployed)),
        "text": draw(WORDS),
        "sent_at_ms": fleet.now_ms,
    }


def case_of(
    category: str,
    expected: str,
    query: dict[str, Any],
    raw: bytes,
    key: bytes | None,
    headers: Headers,
) -> Case:
    """A case whose value was built from ``query``; remembers its readable ids."""
    rid = query.get("request_id")
    bot = query.get("bot_id")
    return Case(
        category,
        expected,
        key,
        raw,
        headers,
        request_id=rid if isinstance(rid, str) else None,
        bot_id=bot if isinstance(bot, str) else None,
    )


def sized(fleet: Fleet, case: Case) -> Case:
    """``case``, but expecting too_large when key plus value is over the worker's cap."""
    too_big = case.size > fleet.max_record_bytes
    return dataclasses.replace(case, expected=TOO_LARGE) if too_big else case


def with_raw_field(query: dict[str, Any], name: str, raw_value: bytes) -> bytes:
    """Serialize ``query`` with the field ``name`` spelled as the raw bytes given."""
    marker = "\u2603PLACEHOLDER\u2603"
    return dumps({**query, name: marker}).replace(dumps(marker), raw_value)


# -- decode: not UTF-8 JSON, or not an object ----------------------------------------------------


def _truncated(draw: st.DrawFn, raw: bytes) -> bytes:
    return raw[: draw(st.integers(0, len(raw) - 1))]  # a compact object cut short never closes


def _garbage_after(draw: st.DrawFn, raw: bytes) -> bytes:
    junk = (b"x", b"}", b",", b"{}", b"]", b"\x00", b"null", b" 1", b"\x1a")
    return raw + draw(st.sampled_from(junk))


def _garbage_before(draw: st.DrawFn, raw: bytes) -> bytes:
    return draw(st.sampled_from([b"x", b",", b"]", b")]}'\n", b"\x00", b"=", b"data: "])) + raw


BAD_LITERALS: Final = (
    *(b"NaN", b"Infinity", b"-Infinity", b"undefined", b"0x10", b"01", b"+1", b".5", b"1."),
    *(b"True", b"None", b"1e", b"--1", b"1_000", b"'1'", b"nul", b"tru"),
)


def _bad_literal(draw: st.DrawFn, raw: bytes) -> bytes:
    name = draw(st.sampled_from(["version", "sent_at_ms", "top_k", "text"]))
    return with_raw_field(orjson.loads(raw), name, draw(st.sampled_from(BAD_LITERALS)))


def _raw_control(draw: st.DrawFn, raw: bytes) -> bytes:
    control = bytes([draw(st.integers(0, 0x1F))])  # unescaped in a string: not JSON
    return with_raw_field(orjson.loads(raw), "text", b'"a' + control + b'b"')


def _blank(draw: st.DrawFn, _raw: bytes) -> bytes:
    return draw(st.text(st.sampled_from(" \t\r\n"), max_size=40)).encode()


def _unquoted_keys(raw: bytes) -> bytes:
    query = orjson.loads(raw)
    return b"{" + b",".join(k.encode() + b":" + dumps(v) for k, v in query.items()) + b"}"


STRUCTURAL: Final[dict[str, Callable[[bytes], bytes]]] = {
    "trailing comma": lambda raw: raw[:-1] + b",}",
    "single quotes": lambda raw: raw.replace(b'"', b"'"),
    "unquoted keys": _unquoted_keys,
    "block comment": lambda raw: b"{/* note */" + raw[1:],
    "line comment": lambda raw: raw[:-1] + b"// note\n}",
    "missing value": lambda raw: raw.replace(b'"version":1', b'"version":', 1),
    "missing colon": lambda raw: raw.replace(b'"version":', b'"version"', 1),
    "semicolon": lambda raw: raw.replace(b",", b";", 1),
    "double brace": lambda raw: raw.replace(b"{", b"{{", 1),
    "wrong closer": lambda raw: raw[:-1] + b"]",
    "python repr": lambda raw: repr(orjson.loads(raw)).encode(),
    "object in braces": lambda raw: b"{" + raw + b"}",
}
"""Fixed ways to break a compact JSON object (its text has no quote, comma or brace)."""


def _fixed(transform: Callable[[bytes], bytes]) -> Callable[[st.DrawFn, bytes], bytes]:
    return lambda _draw, raw: transform(raw)


MALFORMED: Final[dict[str, Callable[[st.DrawFn, bytes], bytes]]] = {
    "truncated": _truncated,
    "garbage after": _garbage_after,
    "garbage before": _garbage_before,
    "bad literal": _bad_literal,
    "raw control char": _raw_control,
    "blank": _blank,
    **{name: _fixed(transform) for name, transform in STRUCTURAL.items()},
}


@st.composite
def malformed_json(draw: st.DrawFn, fleet: Fleet, kind: str) -> Case:
    query = draw(valid_query(fleet))
    raw = MALFORMED[kind](draw, dumps(query))
    return Case(f"malformed json: {kind}", DECODE, query["bot_id"].encode(), raw, draw(HEADERS))


UTF8_PLACES: Final = ("in text", "in a key", "outside strings")


@st.composite
def invalid_utf8(draw: st.DrawFn, fleet: Fleet, kind: str, bad: bytes | None = None) -> Case:
    """Bytes that are not UTF-8 (``bad``, or generated) placed ``kind``."""
    query = draw(valid_query(fleet))
    raw = dumps(query)
    if bad is None:
        bad = draw(st.binary(min_size=1, max_size=6).filter(lambda b: not _is_utf8(b)))
    if kind == "in text":
        raw = with_raw_field(query, "text", b'"a' + bad + b'b"')
    elif kind == "in a key":
        raw = b'{"t' + bad + b'":1,' + raw[1:]
    elif kind == "outside strings":
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + bad + raw[cut:]
    elif kind == "binary":
        raw = draw(st.binary(min_size=1, max_size=300).filter(lambda b: not _is_utf8(b)))
    else:
        encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
        raw = raw.decode().encode(encoding)
        kind = f"{kind} ({encoding})"
    # UTF-16 of ASCII is valid UTF-8 but never JSON (NUL bytes between the characters).
    assert kind.startswith("utf-") or not _is_utf8(raw), raw
    return Case(f"invalid utf-8: {kind}", DECODE, query["bot_id"].encode(), raw, draw(HEADERS))


@st.composite
def lone_surrogate(draw: st.DrawFn, fleet: Fleet, escape: bytes) -> Case:
    """A \\ud800 escape: JSON grammar, but no Unicode string, so it cannot be decoded."""
    query = draw(valid_query(fleet))
    where = draw(st.sampled_from(["text", "request_id"]))
    raw = with_raw_field(query, where, b'"a' + escape + b'b"')
    rid = query["request_id"] if where == "text" else None
    key = query["bot_id"].encode()
    return Case(
        f"escaped lone surrogate in {where}", DECODE, key, raw, draw(HEADERS), rid, query["bot_id"]
    )


NOT_OBJECT_KINDS: Final = ("json value", "array of a query", "query as a string", "deep")


@st.composite
def not_an_object(draw: st.DrawFn, fleet: Fleet, kind: str) -> Case:
    query = draw(valid_query(fleet))
    if kind == "json value":
        raw = dumps(draw(json_values().filter(lambda v: not isinstance(v, dict))))
    elif kind == "array of a query":
        raw = dumps([query])
    elif kind == "query as a string":
        raw = dumps(dumps(query).decode())
    else:
        depth = draw(st.integers(1, 3000))
        raw = b"[" * depth + b"]" * depth
    return Case(f"not an object: {kind}", DECODE, query["bot_id"].encode(), raw, draw(HEADERS))


@st.composite
def tombstone(draw: st.DrawFn, fleet: Fleet) -> Case:
    key = draw(
        st.none()
        | st.sampled_from(fleet.deployed).map(str.encode)
        | st.binary(max_size=16)
        | st.sampled_from(PATH_LIKE).map(str.encode)
    )
    return Case("tombstone (null value)", DECODE, key, None, draw(HEADERS))


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


def _long_text(length: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.builds(_repeat_to, st.text(UNICODE, min_size=1, max_size=8), length)


def _in_trace(name: str) -> Callable[[str], dict[str, Any]]:
    return lambda value: {"trace": {"traceparent": GOOD_TRACEPARENT, name: value}}


OUT_OF_RANGE: Final[dict[str, Callable[[Fleet], st.SearchStrategy[dict[str, Any]]]]] = {
    "empty text": lambda _f: st.just({"text": ""}),
    "empty request_id": lambda _f: st.just({"request_id": ""}),
    "request_id too long": lambda _f: _long_text(st.integers(129, 400)).map(
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
    "tracestate too long": lambda _f: _long_text(st.integers(513, 1500)).map(
        _in_trace("tracestate")
    ),
    "baggage too long": lambda _f: _long_text(st.integers(8193, 9000)).map(_in_trace("baggage")),
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
    query["text"] = draw(_long_text(st.integers(TEXT_MAX + 1, 12_000)))
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


def _pad(raw: bytes, key: bytes | None, size: int, draw: st.DrawFn) -> bytes:
    """``raw`` with JSON whitespace spread before and after it, to ``size`` with the key."""
    room = size - len(raw) - len(key or b"")
    assert room >= 0, (size, len(raw))
    before = draw(st.integers(0, room))
    ws = draw(st.sampled_from([b" ", b"\n", b"\t", b"\r\n"]))
    padding = _repeat_bytes(ws, room)
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
        query["text"] = _repeat_to(draw(WORDS), room)
        raw = dumps(query)
    elif kind == "padded valid query":
        raw = _pad(dumps(query), key, size, draw)
    elif kind == "binary":
        key = draw(st.none() | st.just(key))
        raw = _repeat_bytes(draw(st.binary(min_size=1, max_size=64)), size - len(key or b""))
    else:
        raw = dumps(query)
        key = _repeat_bytes(draw(st.binary(min_size=1, max_size=8)), size - len(raw))
    case = case_of(f"too large: {kind}", TOO_LARGE, query, raw, key, draw(HEADERS))
    assert case.size == size > cap
    return case


# -- routing: valid queries the worker cannot answer ---------------------------------------------


def _unknown_bot_id(fleet: Fleet) -> st.SearchStrategy[str]:
    return st.from_regex(BOT_ID, fullmatch=True).filter(lambda b: b not in fleet.known)


@st.composite
def unknown_bot(draw: st.DrawFn, fleet: Fleet) -> Case:
    bot = draw(_unknown_bot_id(fleet))
    query = draw(valid_query(fleet, bot=bot))
    stage = draw(st.none() | st.sampled_from(STAGES))
    if stage is not None:
        query["stage"] = stage
    return case_of("unknown bot", UNKNOWN_BOT, query, dumps(query), bot.encode(), draw(HEADERS))


@st.composite
def no_deployment(draw: st.DrawFn, fleet: Fleet) -> Case:
    if draw(st.booleans()):
        query = draw(valid_query(fleet, bot=fleet.beta_only))
        stage = draw(st.sampled_from([None, "real", "dev"]))
    else:
        query = draw(valid_query(fleet))
        stage = draw(st.sampled_from(["dev", "beta"]))
    if stage is not None:
        query["stage"] = stage
    key = query["bot_id"].encode()
    return case_of("no deployment on stage", NO_DEPLOYMENT, query, dumps(query), key, ())


@st.composite
def deadline_passed(draw: st.DrawFn, fleet: Fleet) -> Case:
    query = draw(valid_query(fleet))
    past = fleet.now_ms - 60_000
    if draw(st.booleans()):
        query["deadline_ms"] = draw(st.integers(EPOCH_MIN, past))
        kind = "deadline_ms"
    else:
        query["ttl_ms"] = ttl = draw(st.integers(1, TTL_MAX))
        query["sent_at_ms"] = draw(st.integers(EPOCH_MIN, past - ttl))
        kind = "ttl_ms"
    key = query["bot_id"].encode()
    return case_of(f"deadline passed: {kind}", DEADLINE_EXCEEDED, query, dumps(query), key, ())


# -- valid, however odd: must be answered --------------------------------------------------------


def _odd_request_id(draw: st.DrawFn, fleet: Fleet) -> str:
    """Any unicode (path-like included), unique thanks to a numbered suffix, <= 128 chars."""
    suffix = "#" + fleet.request_id("o")
    head = draw(st.sampled_from(PATH_LIKE[:20]) | st.text(UNICODE, max_size=100))
    return head[: REQUEST_ID_MAX - len(suffix)] + suffix


@st.composite
def odd_text(draw: st.DrawFn, fleet: Fleet, text: str | None = None) -> Case:
    """``text`` (or generated unicode, up to the 2000 allowed) from an odd request id."""
    query = draw(valid_query(fleet))
    query["request_id"] = _odd_request_id(draw, fleet)
    query["text"] = text or draw(
        st.text(UNICODE, min_size=1, max_size=200)
        | _long_text(st.just(TEXT_MAX))
        | _long_text(st.integers(1, TEXT_MAX))
    )
    key = query["bot_id"].encode()
    return case_of("valid: odd text", REPLY, query, dumps(query), key, draw(HEADERS))


def _with_whitespace(query: dict[str, Any], ws: str) -> bytes:
    """JSON whitespace around every separator and the document."""
    text = json.dumps(query, ensure_ascii=False, separators=(ws + "," + ws, ws + ":" + ws))
    return (ws + text + ws).encode()


SPELLINGS: Final[dict[str, Callable[[st.DrawFn, dict[str, Any]], bytes]]] = {
    "ascii escapes": lambda _d, q: json.dumps(q, ensure_ascii=True).encode(),
    "indented": lambda d, q: json.dumps(q, indent=d(st.integers(0, 8))).encode(),
    "odd whitespace": lambda d, q: _with_whitespace(q, d(st.text(st.sampled_from(" \t\r\n")))),
    "shuffled keys": lambda d, q: dumps(dict(d(st.permutations(list(q.items()))))),
    "escaped key": lambda _d, q: dumps(q).replace(b'"version"', b'"\\u0076ersion"'),
    "escaped solidus": lambda _d, q: dumps(q).replace(b"/", b"\\/"),
}
"""Other legal JSON spellings of the same query."""


@st.composite
def odd_encoding(draw: st.DrawFn, fleet: Fleet, spelling: str) -> Case:
    query = draw(valid_query(fleet))
    query["text"] = draw(st.text(UNICODE, min_size=1, max_size=60) | st.just("a/b/../c"))
    raw = SPELLINGS[spelling](draw, query)
    key = query["bot_id"].encode()
    return case_of(f"valid: {spelling}", REPLY, query, raw, key, draw(HEADERS))


@st.composite
def duplicate_key(draw: st.DrawFn, fleet: Fleet) -> Case:
    """A key written twice: readers disagree on which copy wins, so it is refused."""
    query = draw(valid_query(fleet))
    name = draw(st.sampled_from(sorted(query)))
    again = draw(st.just(query[name]) | st.sampled_from([1, "real", 0, None]))
    raw = b"{" + dumps({name: again})[1:-1] + b"," + dumps(query)[1:]
    return case_of(f"duplicate key {name}", SCHEMA, query, raw, query["bot_id"].encode(), ())


WHEN: Final = ("now", "ttl", "deadline", "old sent_at", "future sent_at")


def _optional_fields(fleet: Fleet) -> st.SearchStrategy[dict[str, Any]]:
    trace = st.fixed_dictionaries(
        {"traceparent": valid_traceparent()},
        optional={
            "tracestate": st.text(UNICODE, max_size=512),
            "baggage": st.text(UNICODE, max_size=200) | _long_text(st.just(8192)),
        },
    )
    reply_to = st.fixed_dictionaries(
        {"topic": st.just(fleet.replies_topic)}, optional={"partition": st.just(0)}
    )
    optional = {
        "stage": st.just("real"),
        "top_k": st.integers(1, 20),
        "trace": trace,
        "reply_to": reply_to,
    }
    return st.fixed_dictionaries({}, optional=optional)


@st.composite
def odd_optional_fields(draw: st.DrawFn, fleet: Fleet, when: str) -> Case:
    """Every optional field in its allowed range, and a deadline (if any) not yet passed."""
    query = draw(valid_query(fleet))
    optional = draw(_optional_fields(fleet))
    query.update(optional)
    if when == "ttl":
        query["ttl_ms"] = draw(st.integers(600_000, TTL_MAX))
    elif when == "deadline":
        query["deadline_ms"] = draw(st.integers(fleet.now_ms + 600_000, EPOCH_MAX))
    elif when == "old sent_at":
        query["sent_at_ms"] = draw(st.integers(EPOCH_MIN, fleet.now_ms))
    elif when == "future sent_at":
        query["sent_at_ms"] = draw(st.integers(fleet.now_ms, EPOCH_MAX))
    key = query["bot_id"].encode()
    return case_of(
        f"valid: optional fields, {when}", REPLY, query, dumps(query), key, draw(HEADERS)
    )


@st.composite
def exactly_at_the_cap(draw: st.DrawFn, fleet: Fleet) -> Case:
    """A valid query padded with JSON whitespace to exactly the cap: still answered."""
    query = draw(valid_query(fleet))
    if draw(st.booleans()):
        query["text"] = _repeat_to(draw(st.text(UNICODE, min_size=1, max_size=4)), TEXT_MAX)
    key = query["bot_id"].encode()
    raw = _pad(dumps(query), key, fleet.max_record_bytes, draw)
    return case_of("valid: exactly at the size cap", REPLY, query, raw, key, ())


# -- duplicate request ids ----------------------------------------------------------------------


@st.composite
def duplicate_request_ids(draw: st.DrawFn, fleet: Fleet) -> list[Case]:
    """Several records sharing one request id; every one of them gets its own outcome."""
    rid = _odd_request_id(draw, fleet)
    good = {**draw(valid_query(fleet)), "request_id": rid}
    key = good["bot_id"].encode()
    same = case_of("duplicate request id: same record", REPLY, good, dumps(good), key, ())
    other = {**good, "text": good["text"] + " again"}
    ghost = draw(_unknown_bot_id(fleet))
    lost = {**good, "bot_id": ghost}
    broken = {name: value for name, value in good.items() if name != "text"}
    return [
        *[same] * draw(st.integers(2, 3)),
        case_of("duplicate request id: other text", REPLY, other, dumps(other), key, ()),
        case_of(
            "duplicate request id: unknown bot", UNKNOWN_BOT, lost, dumps(lost), ghost.encode(), ()
        ),
        case_of("duplicate request id: no text", SCHEMA, broken, dumps(broken), key, ()),
    ]


# -- the whole corpus ----------------------------------------------------------------------------

Plan = list[tuple[st.SearchStrategy[Case], int]]


def plan(fleet: Fleet) -> Plan:
    """Every strategy and how many examples hypothesis draws from it (~3,300 in all).

    Hand-picked nasty values (path-like ids, invalid UTF-8 sequences, odd texts...) each get
    their own few examples, so every one of them is sent, beside hypothesis's own values.
    """
    return [
        *((malformed_json(fleet, kind), 16) for kind in MALFORMED),
        *((invalid_utf8(fleet, place, bad), 2) for bad in INVALID_UTF8 for place in UTF8_PLACES),
        *((invalid_utf8(fleet, kind), 30) for kind in (*UTF8_PLACES, "binary", "utf-16")),
        *((lone_surrogate(fleet, escape), 8) for escape in LONE_SURROGATES),
        *((not_an_object(fleet, kind), 35) for kind in NOT_OBJECT_KINDS),
        (tombstone(fleet), 40),
        (missing_fields(fleet), 150),
        *((wrong_types(fleet, name), 20) for name in TYPED_FIELDS),
        *((out_of_range(fleet, kind), 16) for kind in OUT_OF_RANGE),
        (unsupported_version(fleet), 80),
        (text_too_long(fleet), 100),
        *((bad_bot_id(fleet, bot), 3) for bot in PATH_LIKE),
        (bad_bot_id(fleet), 100),
        *(
            (key_mismatch(fleet, pick), 5)
            for pick in range(len(near_keys(fleet.deployed[0], fleet)))
        ),
        (key_mismatch(fleet), 80),
        (reply_to_control_topic(fleet), 30),
        *((too_large(fleet, kind), 15) for kind in TOO_LARGE_KINDS),
        (unknown_bot(fleet), 150),
        (no_deployment(fleet), 100),
        (deadline_passed(fleet), 150),
        *((odd_text(fleet, text), 3) for text in ODD_TEXTS),
        (odd_text(fleet), 180),
        *((odd_encoding(fleet, spelling), 22) for spelling in SPELLINGS),
        (duplicate_key(fleet), 40),
        *((odd_optional_fields(fleet, when), 30) for when in WHEN),
        (exactly_at_the_cap(fleet), 10),
    ]


def check_consistent(cases: Sequence[Case]) -> None:
    """The same bytes must always expect the same outcome, or matching would be ambiguous."""
    seen: dict[Any, str] = {}
    for case in cases:
        if case.expected == REPLY:
            continue
        first = seen.setdefault(case.identity, case.expected)
        assert first == case.expected, (case, first)
