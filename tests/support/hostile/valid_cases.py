"""Valid queries the routing refuses, and valid ones however odd, which must be answered."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from hypothesis import strategies as st

from support.hostile.cases import (
    BOT_ID,
    DEADLINE_EXCEEDED,
    EPOCH_MAX,
    EPOCH_MIN,
    HEADERS,
    NO_DEPLOYMENT,
    PATH_LIKE,
    REPLY,
    REQUEST_ID_MAX,
    SCHEMA,
    STAGES,
    TEXT_MAX,
    TTL_MAX,
    UNICODE,
    UNKNOWN_BOT,
    Case,
    Fleet,
    case_of,
    dumps,
    repeat_to,
    valid_query,
    valid_traceparent,
)
from support.hostile.contract_cases import long_text, pad

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
        | long_text(st.just(TEXT_MAX))
        | long_text(st.integers(1, TEXT_MAX))
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
            "baggage": st.text(UNICODE, max_size=200) | long_text(st.just(8192)),
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
        query["text"] = repeat_to(draw(st.text(UNICODE, min_size=1, max_size=4)), TEXT_MAX)
    key = query["bot_id"].encode()
    raw = pad(dumps(query), key, fleet.max_record_bytes, draw)
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
