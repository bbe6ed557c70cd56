"""Hostile records the worker must dead-letter as ``decode``: not UTF-8 JSON, not an object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import orjson
from hypothesis import strategies as st

from support.hostile.cases import (
    DECODE,
    HEADERS,
    PATH_LIKE,
    Case,
    Fleet,
    dumps,
    is_utf8,
    json_values,
    valid_query,
    with_raw_field,
)

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
        bad = draw(st.binary(min_size=1, max_size=6).filter(lambda b: not is_utf8(b)))
    if kind == "in text":
        raw = with_raw_field(query, "text", b'"a' + bad + b'b"')
    elif kind == "in a key":
        raw = b'{"t' + bad + b'":1,' + raw[1:]
    elif kind == "outside strings":
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + bad + raw[cut:]
    elif kind == "binary":
        raw = draw(st.binary(min_size=1, max_size=300).filter(lambda b: not is_utf8(b)))
    else:
        encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32"]))
        raw = raw.decode().encode(encoding)
        kind = f"{kind} ({encoding})"
    # UTF-16 of ASCII is valid UTF-8 but never JSON (NUL bytes between the characters).
    assert kind.startswith("utf-") or not is_utf8(raw), raw
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
