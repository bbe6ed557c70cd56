"""The query fast path (msgspec) never changes a verdict: it accepts only what the judge
(orjson + the repeated-key check + the compiled JSON Schema) accepts, and hands everything
else to the judge, so reasons and messages are the judge's own.

Held to every example in schemas/examples/query and generated near-valid queries here, and
to the whole hostile corpus in tests/test_hostile_input.py, which draws it once.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetserve.contracts.fastquery import QueryV1, proven_query
from fleetserve.contracts.schemas import MessageKind, load_schema, schema_dir
from support.hostile.cases import json_values
from support.verdicts import assert_same_verdict

EXAMPLES = sorted(
    (p.name, p.read_bytes())
    for p in schema_dir().joinpath("examples", "query").iterdir()
    if p.name.endswith(".json") and p.name != "expectations.json"
)


@pytest.mark.parametrize(("name", "raw"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_every_schema_example_gets_the_judges_verdict(name: str, raw: bytes) -> None:
    assert_same_verdict(raw)
    if name.startswith("valid"):
        assert proven_query(raw) is not None, "a valid example should take the fast path"


BASE: dict[str, Any] = {
    "version": 1,
    "request_id": "r-1",
    "bot_id": "bot-a",
    "text": "hello",
    "sent_at_ms": 1_790_000_000_000,
}
EDGES: dict[str, list[Any]] = {
    "version": [1, 1.0, 2, 0, True, "1", None, -1],
    "request_id": ["", "x" * 128, "x" * 129, 5, None, "\n"],
    "bot_id": ["a", "bot\n", "\nbot", "Bot", "a" * 64, "a" * 65, "a-_9", "-a", "ä", 3],
    "text": ["", " ", "x" * 2000, "x" * 2001, "\U0001f642" * 2000, "\x00", 1.5, []],
    "sent_at_ms": [946684800000, 946684799999, 4102444800000, 4102444800001, 1.79e12, "1"],
    "stage": ["dev", "beta", "real", "prod", "", None, 1],
    "deadline_ms": [1_790_000_000_000, 1.79e12, 0, None],
    "ttl_ms": [1, 0, 3_600_000, 3_600_001, 5.0, 5.5, True],
    "top_k": [1, 20, 0, 21, 3.0, False, None],
    "reply_to": [
        {"topic": "t"},
        {"topic": "t\n"},
        {"topic": "t", "partition": 0},
        {"topic": "t", "partition": 2.0},
        {"topic": "t", "partition": -1},
        {"topic": "t", "partition": 2147483648},
        {"partition": 1},
        {"topic": "t", "x": 1},
        {},
        "t",
    ],
    "trace": [
        {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        {"traceparent": "ff-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01\n"},
        {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "tracestate": "x" * 513},
        {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "baggage": "x"},
        {"tracestate": "x"},
    ],
    "unknown": [1, None],
}


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in EDGES.items() for v in values]
)
def test_edges_of_every_field_get_the_judges_verdict(field: str, value: Any) -> None:
    assert_same_verdict(orjson.dumps({**BASE, field: value}))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"version":1,"request_id":"r","bot_id":"a","bot_id":"b","text":"t","sent_at_ms":1790000000000}',
        b'{"version":1,"request_id":"r","bot_id":"a","text":"t","sent_at_ms":1790000000000,'
        b'"deadline_ms":1790000000001,"ttl_ms":5}',
        b'{"version":1,"request_id":"r","bot_id":"a","text":"\\ud800","sent_at_ms":1790000000000}',
        b'{"version":1,"request_id":"r","bot_id":"a","text":"t","sent_at_ms":1790000000000} x',
        b'{"version" :1,"request_id":"r","bot_id":"a","text":"t","sent_at_ms":1790000000000}',
        b'{"version":1,"request_id":"r","bot_id":"a","text":"\\":","sent_at_ms":1790000000000}',
        b'{"version":1,"request_id":"r","bot_id":"a","text":"t","sent_at_ms":17900000000000000000000}',
        b'{"version":1,"request_id":"r","bot_id":"a","text":"t","sent_at_ms":1.79e12}',
        b"\xef\xbb\xbf{}",
        b"[]",
        b"",
    ],
)
def test_tricky_bytes_get_the_judges_verdict(raw: bytes) -> None:
    assert_same_verdict(raw)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    changes=st.dictionaries(
        st.sampled_from([*EDGES]),
        json_values(4) | st.sampled_from(list(itertools.chain(*EDGES.values()))),
        max_size=4,
    ),
    drop=st.sets(st.sampled_from(list(BASE)), max_size=2),
)
def test_generated_near_valid_queries_get_the_judges_verdict(
    changes: dict[str, Any], drop: set[str]
) -> None:
    query = {k: v for k, v in {**BASE, **changes}.items() if k not in drop}
    assert_same_verdict(orjson.dumps(query))


def test_the_struct_has_the_schemas_fields() -> None:
    schema = load_schema(MessageKind.QUERY)
    fields = {f.name: f for f in msgspec.structs.fields(QueryV1)}
    assert set(fields) == set(schema["properties"])
    required = {name for name, f in fields.items() if f.required}
    assert required == set(schema["required"])
