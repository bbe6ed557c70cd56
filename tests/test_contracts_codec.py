"""The codec on hand-written messages: every reason code, field paths, what encode refuses."""

from __future__ import annotations

from types import MappingProxyType

import orjson
import pytest

from fleetserve.contracts import codec
from fleetserve.contracts.codec import decode, encode, validate
from fleetserve.contracts.schemas import (
    MessageKind,
)
from fleetserve.errors import ContractError, DeadLetterError
from support.contract_examples import example, minimal_query, named_fields


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"text": "caf\xe9"}', "UTF-8"),
        (b"not json", "JSON"),
        (b"", "JSON"),
        (b'{"version": 1,', "JSON"),
        (b"[" * 5000, "JSON"),
        (b"[]", "array"),
        (b'[{"version": 1}]', "array"),
        (b'"hello"', "string"),
        (b"null", "null"),
        (b"42", "number"),
    ],
)
def test_not_a_json_object_is_invalid_json(raw: bytes, hint: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode(MessageKind.QUERY, raw)
    assert caught.value.reason == codec.INVALID_JSON
    assert hint in str(caught.value)


def test_contract_error_is_a_dead_letter_error() -> None:
    with pytest.raises(DeadLetterError):
        decode(MessageKind.QUERY, b"nope")


@pytest.mark.parametrize("version", [b"2", b"0", b"-1", b"2.0", b"100000000000000000000"])
def test_other_version_is_unsupported_even_with_unknown_fields(version: bytes) -> None:
    rest = orjson.dumps({**minimal_query(), "locale": "en-US"}).removeprefix(b'{"version":1')
    raw = b'{"version":' + version + rest
    with pytest.raises(ContractError) as caught:
        decode(MessageKind.QUERY, raw)
    assert caught.value.reason == codec.UNSUPPORTED_VERSION
    assert named_fields(str(caught.value)) == ["version"]


@pytest.mark.parametrize("version", ["1", True, None, [1]])
def test_malformed_version_is_a_schema_violation(version: object) -> None:
    message = {**minimal_query(), "version": version}
    with pytest.raises(ContractError) as caught:
        decode(MessageKind.QUERY, orjson.dumps(message))
    assert caught.value.reason == codec.SCHEMA_VIOLATION
    assert named_fields(str(caught.value)) == ["version"]


def test_query_with_both_deadline_and_ttl_is_rejected() -> None:
    message = {**minimal_query(), "deadline_ms": 1754900001000, "ttl_ms": 1000}
    with pytest.raises(ContractError) as caught:
        decode(MessageKind.QUERY, orjson.dumps(message))
    assert caught.value.reason == codec.SCHEMA_VIOLATION
    assert named_fields(str(caught.value)) == ["deadline_ms", "ttl_ms"]


@pytest.mark.parametrize("extra", [{"deadline_ms": 1754900001000}, {"ttl_ms": 1000}, {}])
def test_query_with_one_or_no_deadline_is_fine(extra: dict[str, int]) -> None:
    validate(MessageKind.QUERY, {**minimal_query(), **extra})


def test_unknown_fields_are_named_sorted() -> None:
    message = {**minimal_query(), "zeta": 1, "alpha": 2}
    with pytest.raises(ContractError) as caught:
        decode(MessageKind.QUERY, orjson.dumps(message))
    assert str(caught.value) == "alpha, zeta: unknown fields, not in the contract"


def test_unknown_nested_field_is_named_with_its_path() -> None:
    message = {**minimal_query(), "reply_to": {"topic": "replies", "partiton": 1}}
    with pytest.raises(ContractError) as caught:
        decode(MessageKind.QUERY, orjson.dumps(message))
    assert named_fields(str(caught.value)) == ["reply_to.partiton"]


def test_missing_fields_are_all_named() -> None:
    message = minimal_query()
    del message["text"], message["sent_at_ms"]
    with pytest.raises(ContractError) as caught:
        validate(MessageKind.QUERY, message)
    assert str(caught.value) == "text, sent_at_ms: missing required fields"


def test_nested_type_error_names_the_path() -> None:
    reply = example(MessageKind.REPLY, "valid-answer-with-trace.json")
    reply["timings"]["total_ms"] = "19.7"
    with pytest.raises(ContractError) as caught:
        validate(MessageKind.REPLY, reply)
    assert str(caught.value) == "timings.total_ms: must be number"


def test_boolean_is_not_an_integer() -> None:
    with pytest.raises(ContractError) as caught:
        validate(MessageKind.QUERY, {**minimal_query(), "top_k": True})
    assert named_fields(str(caught.value)) == ["top_k"]


def test_trailing_newline_does_not_pass_a_pattern() -> None:
    with pytest.raises(ContractError) as caught:
        validate(MessageKind.QUERY, {**minimal_query(), "bot_id": "bank-helpdesk\n"})
    assert named_fields(str(caught.value)) == ["bot_id"]


def test_validate_rejects_a_non_object() -> None:
    with pytest.raises(ContractError) as caught:
        validate(MessageKind.DEPLOYMENT, ["not", "a", "message"])
    assert caught.value.reason == codec.SCHEMA_VIOLATION
    assert str(caught.value) == "(message): must be object"


def test_encode_is_compact_json_of_exactly_the_message() -> None:
    query = minimal_query()
    assert encode(MessageKind.QUERY, query) == orjson.dumps(query)


def test_codec_never_fills_in_defaults() -> None:
    query = minimal_query()
    before = dict(query)
    decoded = decode(MessageKind.QUERY, encode(MessageKind.QUERY, query))
    assert query == before
    assert "stage" not in decoded


def test_encode_accepts_any_mapping() -> None:
    query = minimal_query()
    assert encode(MessageKind.QUERY, MappingProxyType(query)) == orjson.dumps(query)


def test_encode_refuses_an_invalid_message() -> None:
    query = {**minimal_query(), "bot_id": "Bank"}
    with pytest.raises(ContractError) as caught:
        encode(MessageKind.QUERY, query)
    assert caught.value.reason == codec.SCHEMA_VIOLATION
    assert named_fields(str(caught.value)) == ["bot_id"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_encode_refuses_non_finite_numbers(bad: float) -> None:
    reply = example(MessageKind.REPLY, "valid-answer-with-trace.json")
    reply["top_k"][2]["score"] = bad
    with pytest.raises(ContractError) as caught:
        encode(MessageKind.REPLY, reply)
    assert named_fields(str(caught.value)) == ["top_k[2].score"]


def test_encode_refuses_a_nan_timing() -> None:
    reply = example(MessageKind.REPLY, "valid-fallback-text-off.json")
    reply["timings"]["inference_ms"] = float("nan")
    with pytest.raises(ContractError) as caught:
        encode(MessageKind.REPLY, reply)
    assert str(caught.value) == "timings.inference_ms: must be a finite number"


def test_encode_of_a_newer_version_is_unsupported() -> None:
    with pytest.raises(ContractError) as caught:
        encode(MessageKind.QUERY, {**minimal_query(), "version": 2})
    assert caught.value.reason == codec.UNSUPPORTED_VERSION


def test_encode_of_an_unserializable_value_is_a_contract_error() -> None:
    # A timing has no upper bound in the schema, but orjson stops at 64 bits.
    reply = example(MessageKind.REPLY, "valid-answer-with-trace.json")
    reply["timings"]["total_ms"] = 10**20
    with pytest.raises(ContractError) as caught:
        encode(MessageKind.REPLY, reply)
    assert caught.value.reason == codec.SCHEMA_VIOLATION
    assert "64-bit" in str(caught.value)
