"""The hostile corpus's building blocks: what a case is, the contract's facts as the tests
read them from the schemas, and the strategies every category shares.

Hypothesis strategies for hostile query records, each with the outcome the contract demands.

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
import re
from collections.abc import Iterator
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


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def repeat_to(chunk: str, length: int) -> str:
    return (chunk * (length // len(chunk) + 1))[:length]


def repeat_bytes(chunk: bytes, length: int) -> bytes:
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
