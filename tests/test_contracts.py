"""The message contracts: schema files, their examples, and the codec."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib.resources.abc import Traversable
from typing import Any, Literal, get_args

import fastjsonschema
import orjson
import pytest

from fleetserve.contracts import codec, messages
from fleetserve.contracts.codec import decode, encode
from fleetserve.contracts.schemas import (
    SCHEMA_VERSION,
    MessageKind,
    load_schema,
    schema_filename,
    validator,
)
from fleetserve.deadletters.reasons import CONTRACT_REASONS
from fleetserve.errors import ContractError
from support.contract_examples import EXAMPLES, example, named_fields, read_example

MIN_VALID_EXAMPLES = 2
MIN_INVALID_EXAMPLES = 4

# Draft-07 keywords and annotations. fastjsonschema ignores unknown keywords, so
# a typo such as "maxlength" would silently switch a check off; this list catches it.
DRAFT07_KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "$ref",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "readOnly",
        "writeOnly",
        "definitions",
        "type",
        "enum",
        "const",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "format",
        "contentMediaType",
        "contentEncoding",
        "items",
        "additionalItems",
        "maxItems",
        "minItems",
        "uniqueItems",
        "contains",
        "maxProperties",
        "minProperties",
        "required",
        "properties",
        "patternProperties",
        "additionalProperties",
        "dependencies",
        "propertyNames",
        "if",
        "then",
        "else",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
    }
)
DRAFT07_TYPES = frozenset({"null", "boolean", "object", "array", "number", "integer", "string"})


# ---------------------------------------------------------------- helpers


def example_files(kind: MessageKind, prefix: str) -> list[Traversable]:
    folder = EXAMPLES.joinpath(kind.value)
    found = [f for f in folder.iterdir() if f.name.startswith(prefix) and f.name.endswith(".json")]
    return sorted(found, key=lambda f: f.name)


def expectations(kind: MessageKind) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(
        EXAMPLES.joinpath(kind.value).joinpath("expectations.json").read_bytes()
    )
    return loaded


def expected_failure(kind: MessageKind, name: str) -> tuple[str, str]:
    """(field, reason) for an invalid example; a bare string means a schema violation."""
    entry = expectations(kind)[name]
    if isinstance(entry, str):
        return entry, codec.SCHEMA_VIOLATION
    return entry["field"], entry["reason"]


def subschemas(schema: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object inside ``schema``, with a JSON-pointer-like location."""
    if not isinstance(schema, dict):
        return
    yield where, schema
    for key in ("properties", "definitions", "patternProperties"):
        for name, child in schema.get(key, {}).items():
            yield from subschemas(child, f"{where}/{key}/{name}")
    for key in ("items", "additionalItems", "not", "if", "then", "else", "contains"):
        yield from subschemas(schema.get(key), f"{where}/{key}")
    for key in ("allOf", "anyOf", "oneOf"):
        for index, child in enumerate(schema.get(key, [])):
            yield from subschemas(child, f"{where}/{key}/{index}")


def is_object_schema(schema: Mapping[str, Any]) -> bool:
    types = schema.get("type")
    return (
        "properties" in schema
        or types == "object"
        or (isinstance(types, list) and "object" in types)
    )


def at(kind: MessageKind, *path: str) -> Mapping[str, Any]:
    """The subschema at ``path`` in a kind's schema, following local ``$ref``s."""
    root = load_schema(kind)
    node: Mapping[str, Any] = root
    for key in path:
        node = node[key]
        if "$ref" in node:
            ref = str(node["$ref"])
            assert ref.startswith("#/"), ref
            node = at(kind, *ref[2:].split("/"))
    return node


VALID = [(k, f.name) for k in MessageKind for f in example_files(k, "valid-")]
INVALID = [(k, f.name) for k in MessageKind for f in example_files(k, "invalid-")]


# ---------------------------------------------------------------- schema files


@pytest.mark.parametrize("kind", list(MessageKind))
def test_schema_file_is_a_compilable_draft07_schema(kind: MessageKind) -> None:
    schema = load_schema(kind)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert str(schema["$id"]).endswith(f"/{schema_filename(kind)}")
    assert schema["title"]
    assert schema["description"]
    fastjsonschema.compile(dict(schema), use_default=False)
    assert callable(validator(kind))


@pytest.mark.parametrize("kind", list(MessageKind))
def test_schema_uses_only_draft07_keywords_and_valid_patterns(kind: MessageKind) -> None:
    for where, node in subschemas(load_schema(kind)):
        unknown = set(node) - DRAFT07_KEYWORDS
        assert not unknown, f"{kind}: {where} has unknown keywords {unknown}"
        types = node.get("type", [])
        assert set(types if isinstance(types, list) else [types]) <= DRAFT07_TYPES, where
        if "pattern" in node:
            re.compile(node["pattern"])
            assert node["pattern"].startswith("^"), where
            assert node["pattern"].endswith("$"), where


@pytest.mark.parametrize("kind", list(MessageKind))
def test_every_property_has_a_description(kind: MessageKind) -> None:
    for where, node in subschemas(load_schema(kind)):
        for name, prop in node.get("properties", {}).items():
            assert str(prop.get("description", "")).strip(), f"{kind}: {where}/properties/{name}"


@pytest.mark.parametrize("kind", list(MessageKind))
def test_every_object_level_rejects_unknown_fields(kind: MessageKind) -> None:
    for where, node in subschemas(load_schema(kind)):
        if is_object_schema(node):
            assert node.get("additionalProperties") is False, f"{kind}: {where}"


@pytest.mark.parametrize("kind", list(MessageKind))
def test_version_is_a_required_integer_const(kind: MessageKind) -> None:
    schema = load_schema(kind)
    assert "version" in schema["required"]
    assert schema["properties"]["version"]["type"] == "integer"
    assert schema["properties"]["version"]["const"] == SCHEMA_VERSION == 1


def test_schemas_load_once_and_compile_once() -> None:
    for kind in MessageKind:
        assert load_schema(kind) is load_schema(kind)
        assert validator(kind) is validator(kind)


# ---------------------------------------------------------------- examples


@pytest.mark.parametrize("kind", list(MessageKind))
def test_each_kind_has_enough_examples_and_every_invalid_one_is_explained(
    kind: MessageKind,
) -> None:
    valid = [f.name for f in example_files(kind, "valid-")]
    invalid = [f.name for f in example_files(kind, "invalid-")]
    assert len(valid) >= MIN_VALID_EXAMPLES, valid
    assert len(invalid) >= MIN_INVALID_EXAMPLES, invalid
    # Both ways: a new example cannot skip its check, a renamed one leaves no stale entry.
    assert set(expectations(kind)) == set(invalid)
    others = (
        {f.name for f in EXAMPLES.joinpath(kind.value).iterdir()}
        - set(valid)
        - set(invalid)
        - {"expectations.json"}
    )
    assert not others, f"example files must start with valid- or invalid-: {others}"


@pytest.mark.parametrize(("kind", "name"), VALID)
def test_valid_example_round_trips(kind: MessageKind, name: str) -> None:
    message = decode(kind, read_example(kind, name))
    assert decode(kind, encode(kind, message)) == message
    assert message == example(kind, name), "decode must not add or change fields"


@pytest.mark.parametrize(("kind", "name"), INVALID)
def test_invalid_example_is_rejected_for_the_expected_field(kind: MessageKind, name: str) -> None:
    field, reason = expected_failure(kind, name)
    with pytest.raises(ContractError) as caught:
        decode(kind, read_example(kind, name))
    assert caught.value.reason == reason, str(caught.value)
    assert field in named_fields(str(caught.value)), str(caught.value)


@pytest.mark.parametrize(("kind", "name"), INVALID)
def test_invalid_example_is_refused_by_encode_too(kind: MessageKind, name: str) -> None:
    with pytest.raises(ContractError):
        encode(kind, example(kind, name))


# ---------------------------------------------------------------- decode failures


# ---------------------------------------------------------------- encode


# ---------------------------------------------------------------- typed shapes


def literal_values(alias: Any) -> set[str]:
    return set(get_args(alias))


@pytest.mark.parametrize(
    ("alias", "kind", "path"),
    [
        (messages.Stage, MessageKind.QUERY, ("properties", "stage")),
        (messages.Stage, MessageKind.REPLY, ("properties", "stage")),
        (messages.Stage, MessageKind.DEAD_LETTER, ("properties", "model", "properties", "stage")),
        (messages.Stage, MessageKind.DEPLOYMENT, ("properties", "stages")),
        (
            messages.Quantization,
            MessageKind.REPLY,
            ("properties", "model", "properties", "quantization"),
        ),
        (messages.DeadLetterReason, MessageKind.DEAD_LETTER, ("properties", "reason")),
        (messages.Phase, MessageKind.DEAD_LETTER, ("properties", "phase")),
        (messages.DeploymentAction, MessageKind.DEPLOYMENT, ("properties", "action")),
        (
            messages.GuardMetric,
            MessageKind.DEPLOYMENT,
            (
                "definitions",
                "rollback_evidence",
                "properties",
                "checks",
                "items",
                "properties",
                "metric",
            ),
        ),
        (messages.DeadLetterReason, MessageKind.BOT_STATS, ("properties", "dead_letters")),
    ],
)
def test_literal_types_match_the_schema_enums(
    alias: Any, kind: MessageKind, path: tuple[str, ...]
) -> None:
    node = at(kind, *path)
    values = set(node["properties"]) if "properties" in node else set(node["enum"])
    assert literal_values(alias) == values


def test_every_codec_reason_maps_to_a_dead_letter_reason() -> None:
    assert set(CONTRACT_REASONS) == set(codec.REASONS)
    assert set(CONTRACT_REASONS.values()) <= literal_values(messages.DeadLetterReason)


def test_python_defaults_match_the_schema_defaults() -> None:
    assert at(MessageKind.QUERY, "properties", "stage")["default"] == messages.DEFAULT_STAGE
    stage = at(MessageKind.DEPLOYMENT, "definitions", "stage_deployment")
    assert (
        stage["properties"]["include_query_text"]["default"] is messages.DEFAULT_INCLUDE_QUERY_TEXT
    )


SHAPES: list[tuple[Any, MessageKind, tuple[str, ...]]] = [
    (messages.QueryV1, MessageKind.QUERY, ()),
    (messages.ReplyTo, MessageKind.QUERY, ("properties", "reply_to")),
    (messages.TraceContext, MessageKind.QUERY, ("properties", "trace")),
    (messages.ReplyV1, MessageKind.REPLY, ()),
    (messages.ReplyModel, MessageKind.REPLY, ("properties", "model")),
    (messages.ScoredIntent, MessageKind.REPLY, ("properties", "top_k", "items")),
    (messages.Timings, MessageKind.REPLY, ("properties", "timings")),
    (messages.WorkerRef, MessageKind.REPLY, ("properties", "worker")),
    (messages.ReplySource, MessageKind.REPLY, ("properties", "source")),
    (messages.TraceContext, MessageKind.REPLY, ("properties", "trace")),
    (messages.DeadLetterV1, MessageKind.DEAD_LETTER, ()),
    (messages.OriginalRecord, MessageKind.DEAD_LETTER, ("properties", "original")),
    (
        messages.RecordHeader,
        MessageKind.DEAD_LETTER,
        ("properties", "original", "properties", "headers", "items"),
    ),
    (messages.DeadLetterSource, MessageKind.DEAD_LETTER, ("properties", "source")),
    (messages.DeadLetterModel, MessageKind.DEAD_LETTER, ("properties", "model")),
    (messages.WorkerRef, MessageKind.DEAD_LETTER, ("properties", "worker")),
    (messages.DeploymentV1, MessageKind.DEPLOYMENT, ()),
    (messages.Stages, MessageKind.DEPLOYMENT, ("properties", "stages")),
    (messages.StageDeployment, MessageKind.DEPLOYMENT, ("definitions", "stage_deployment")),
    (
        messages.PreviousModel,
        MessageKind.DEPLOYMENT,
        ("definitions", "stage_deployment", "properties", "previous", "items"),
    ),
    (messages.SnapshotLocation, MessageKind.DEPLOYMENT, ("definitions", "location")),
    (messages.RollbackEvidence, MessageKind.DEPLOYMENT, ("definitions", "rollback_evidence")),
    (
        messages.GuardCheck,
        MessageKind.DEPLOYMENT,
        ("definitions", "rollback_evidence", "properties", "checks", "items"),
    ),
    (messages.BotStatsV1, MessageKind.BOT_STATS, ()),
    (messages.StatsWorker, MessageKind.BOT_STATS, ("properties", "worker")),
    (messages.ConfidenceStats, MessageKind.BOT_STATS, ("properties", "confidence")),
    (messages.MarginStats, MessageKind.BOT_STATS, ("properties", "margin")),
    (messages.LatencyStats, MessageKind.BOT_STATS, ("properties", "latency_ms")),
    (messages.InferenceStats, MessageKind.BOT_STATS, ("properties", "inference_ms")),
    (messages.DeadLettersByReason, MessageKind.BOT_STATS, ("properties", "dead_letters")),
]


@pytest.mark.parametrize(("shape", "kind", "path"), SHAPES)
def test_typed_dicts_match_the_schemas(
    shape: Any, kind: MessageKind, path: tuple[str, ...]
) -> None:
    node = at(kind, *path)
    assert shape.__required_keys__ == set(node.get("required", [])), shape.__name__
    assert shape.__required_keys__ | shape.__optional_keys__ == set(node["properties"]), (
        shape.__name__
    )


def test_every_typed_dict_is_checked() -> None:
    checked = {shape for shape, _, _ in SHAPES}
    declared = {
        value
        for value in vars(messages).values()
        if isinstance(value, type)
        and issubclass(value, dict)
        and value.__module__ == messages.__name__
    }
    assert declared == checked


def test_a_typed_query_encodes() -> None:
    query: messages.QueryV1 = {
        "version": 1,
        "request_id": "r-1",
        "bot_id": "snips-weather",
        "text": "will it rain in Seoul tomorrow",
        "sent_at_ms": 1754900000000,
        "stage": "real",
    }
    version: Literal[1] = query["version"]
    assert decode(MessageKind.QUERY, encode(MessageKind.QUERY, query)) == query
    assert version == 1
