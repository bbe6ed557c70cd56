"""The query contract's fast path: msgspec proves a query valid; anything else is judged.

Decoding a query with orjson, the repeated-key check and the compiled JSON Schema
(``codec.decode``) costs about 10 us; msgspec decodes and checks a typed struct in about
1 us. The JSON Schema stays the contract and ``codec.decode`` stays the judge: the fast
path only ever *accepts*, and a query it does not accept (for any reason: a float where
an integer is due, a key named twice, an unknown field, bad JSON) goes to the judge,
which gives the verdict and the reason. So the fast path can change how long a query
takes, never what happens to it, provided it accepts nothing the schema rejects.

That proviso is held by tests (``tests/test_fastquery.py``): every example in
``schemas/examples/query``, the hostile corpus and generated near-valid queries get the
same verdict both ways. The struct's bounds and patterns are read from the schema file
itself, and its fields are checked against the schema's properties.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, Literal

import msgspec

from fleetserve.contracts.codec import decode
from fleetserve.contracts.schemas import MessageKind, load_schema

# fastjsonschema reads an unescaped ``$`` as the end of the string (``\Z``); Python's
# ``$`` would also match before a final newline ("bot\n"), which the schema refuses.
_DOLLAR = re.compile(r"(?<!\\)\$")


def _schema() -> dict[str, Any]:
    return dict(load_schema(MessageKind.QUERY))


def _meta(definition: dict[str, Any]) -> msgspec.Meta:
    bounds: dict[str, Any] = {}
    if "pattern" in definition:
        bounds["pattern"] = _DOLLAR.sub(r"\\Z", definition["pattern"])
    for schema_key, meta_key in (
        ("minLength", "min_length"),
        ("maxLength", "max_length"),
        ("minimum", "ge"),
        ("maximum", "le"),
    ):
        if schema_key in definition:
            bounds[meta_key] = definition[schema_key]
    return msgspec.Meta(**bounds)


_S = _schema()
_P = _S["properties"]
_EPOCH = _S["definitions"]["epoch_ms"]
_REPLY_TO = _P["reply_to"]["properties"]
_TRACE = _P["trace"]["properties"]

Epoch = Annotated[int, _meta(_EPOCH)]


class ReplyTo(msgspec.Struct, forbid_unknown_fields=True):
    topic: Annotated[str, _meta(_REPLY_TO["topic"])]
    partition: Annotated[int, _meta(_REPLY_TO["partition"])] | msgspec.UnsetType = msgspec.UNSET


class Trace(msgspec.Struct, forbid_unknown_fields=True):
    traceparent: Annotated[str, _meta(_TRACE["traceparent"])]
    tracestate: Annotated[str, _meta(_TRACE["tracestate"])] | msgspec.UnsetType = msgspec.UNSET
    baggage: Annotated[str, _meta(_TRACE["baggage"])] | msgspec.UnsetType = msgspec.UNSET


class QueryV1(msgspec.Struct, forbid_unknown_fields=True):
    """query v1 as a typed struct; absent optional fields are ``UNSET``."""

    version: Literal[1]
    request_id: Annotated[str, _meta(_P["request_id"])]
    bot_id: Annotated[str, _meta(_P["bot_id"])]
    text: Annotated[str, _meta(_P["text"])]
    sent_at_ms: Epoch
    stage: Literal["dev", "beta", "real"] | msgspec.UnsetType = msgspec.UNSET
    deadline_ms: Epoch | msgspec.UnsetType = msgspec.UNSET
    ttl_ms: Annotated[int, _meta(_P["ttl_ms"])] | msgspec.UnsetType = msgspec.UNSET
    reply_to: ReplyTo | msgspec.UnsetType = msgspec.UNSET
    trace: Trace | msgspec.UnsetType = msgspec.UNSET
    top_k: Annotated[int, _meta(_P["top_k"])] | msgspec.UnsetType = msgspec.UNSET


@cache
def _decoder() -> msgspec.json.Decoder[QueryV1]:
    return msgspec.json.Decoder(QueryV1)


def proven_query(raw: bytes) -> dict[str, Any] | None:
    """The query as ``codec.decode`` returns it when msgspec proves it valid; else None."""
    try:
        typed = _decoder().decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if typed.deadline_ms is not msgspec.UNSET and typed.ttl_ms is not msgspec.UNSET:
        return None  # the schema's "not both": the judge says which
    # Plain dicts, lists and ints as orjson would give them; absent fields left out.
    obj: dict[str, Any] = msgspec.to_builtins(typed)
    return obj if _no_repeated_key(raw, obj) else None


def _no_repeated_key(raw: bytes, obj: dict[str, Any]) -> bool:
    """True when the bytes name each of the query's keys once (``codec.duplicate_key``'s
    proof: without whitespace before a colon, every key makes exactly one ``":``). msgspec
    keeps the last copy of a repeated key, so the struct counts it once and the bytes more
    often; anything unproven (a spaced colon, ``":`` inside a text) goes to the judge.
    """
    if b" :" in raw or b"\t:" in raw or b"\n:" in raw or b"\r:" in raw:
        return False
    keys = len(obj) + len(obj.get("reply_to", ())) + len(obj.get("trace", ()))
    return raw.count(b'":') == keys


def decode_query(raw: bytes) -> dict[str, Any]:
    """``codec.decode(MessageKind.QUERY, raw)``: the same dict, or the same ContractError."""
    proven = proven_query(raw)
    return proven if proven is not None else decode(MessageKind.QUERY, raw)
