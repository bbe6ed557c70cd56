"""Decode, validate and encode fleetserve messages; pure functions over bytes and dicts.

Every failure is a :class:`~fleetserve.errors.ContractError` whose ``reason`` is
``invalid_json``, ``unsupported_version`` or ``schema_violation`` and whose
message starts with the plain path of the offending field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson
from fastjsonschema import JsonSchemaValueException

from fleetserve.contracts.schemas import SCHEMA_VERSION, MessageKind, validator
from fleetserve.errors import ContractError

INVALID_JSON: Final = "invalid_json"
UNSUPPORTED_VERSION: Final = "unsupported_version"
SCHEMA_VIOLATION: Final = "schema_violation"
REASONS: Final = (INVALID_JSON, UNSUPPORTED_VERSION, SCHEMA_VIOLATION)
"""The reason codes this module raises, a subset of the dead-letter reasons."""


def decode(kind: MessageKind, raw: bytes) -> dict[str, Any]:
    """Parse ``raw`` as one JSON object and check it against the kind's contract."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ContractError(INVALID_JSON, f"not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ContractError(INVALID_JSON, f"expected a JSON object, got {_json_type(obj)}")
    duplicate = duplicate_key(raw, obj)
    if duplicate is not None:
        raise ContractError(
            SCHEMA_VIOLATION,
            f"{duplicate}: the key appears twice in one object; JSON readers disagree on "
            "which copy wins, so the message is refused rather than guessed",
        )
    validate(kind, obj)
    return obj


def duplicate_key(raw: bytes, parsed: object) -> str | None:
    """The first key named twice in one object of ``raw``, or None.

    orjson keeps the last copy silently. Every key is a string followed by a colon, so
    when no whitespace precedes any colon, each key makes one ``":`` in the bytes (text
    inside a string can only add more): exactly as many as parsed keys proves that no key
    was repeated, in about a microsecond. Otherwise the exact (slower) parse decides.
    """
    spaced = b" :" in raw or b"\t:" in raw or b"\n:" in raw or b"\r:" in raw
    if not spaced and raw.count(b'":') == _count_keys(parsed):
        return None
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return dict(items)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (RecursionError, ValueError):
        return None  # nesting this deep breaks every contract anyway: the schema says so
    return found[0] if found else None


def _count_keys(value: object) -> int:
    count = 0
    if type(value) is dict:
        count = len(value)
        for item in value.values():
            if type(item) is dict or type(item) is list:
                count += _count_keys(item)
    elif type(value) is list:
        for item in value:
            if type(item) is dict or type(item) is list:
                count += _count_keys(item)
    return count


def encode(kind: MessageKind, message: Mapping[str, Any]) -> bytes:
    """Check ``message`` against the kind's contract and serialize it.

    An invalid outgoing message is a bug in fleetserve, but it still raises
    ContractError so the caller handles one exception type.
    """
    obj = message if isinstance(message, dict) else dict(message)
    validate(kind, obj)
    # JSON has no NaN or infinity (orjson would write null) and the schema's
    # bounds let NaN through, so catch a broken model's output here.
    bad = None if _all_finite(obj) else _non_finite_path(obj, "")
    if bad is not None:
        raise ContractError(SCHEMA_VIOLATION, f"{bad}: must be a finite number")
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError as exc:
        raise ContractError(SCHEMA_VIOLATION, f"cannot serialize as JSON: {exc}") from exc


def validate(kind: MessageKind, obj: object) -> None:
    """Raise ContractError unless ``obj`` is a valid message of ``kind``.

    The version is checked first so that a newer message gets the clear
    reason ``unsupported_version`` rather than a list of unknown fields.
    """
    if isinstance(obj, dict):
        _check_version(kind, obj.get("version"))
    try:
        validator(kind)(obj)
    except JsonSchemaValueException as exc:
        raise ContractError(SCHEMA_VIOLATION, describe(exc)) from exc


def _check_version(kind: MessageKind, version: object) -> None:
    # A non-numeric version ("1", true) is a malformed field, left to the schema.
    is_number = isinstance(version, int | float) and not isinstance(version, bool)
    if is_number and version != SCHEMA_VERSION:
        raise ContractError(
            UNSUPPORTED_VERSION,
            f"version: {kind.value} v{version} is not supported; "
            f"this fleetserve reads v{SCHEMA_VERSION}",
        )


def describe(exc: JsonSchemaValueException) -> str:
    """Turn a fastjsonschema error into ``<field path>: <what is wrong>``."""
    base = _plain_path(exc.name)
    if exc.rule == "required":
        return _about_keys(base, _missing_keys(exc), "missing required field{s}")
    if exc.rule == "additionalProperties":
        return _about_keys(base, _unknown_keys(exc), "unknown field{s}, not in the contract")
    if exc.rule == "not":
        together = _keys_not_allowed_together(exc)
        if together:
            return _about_keys(base, together, "give at most one of these fields")
    return f"{base or '(message)'}: {_detail(exc)}"


def _plain_path(name: str | None) -> str:
    """``data.timings.queued_ms`` -> ``timings.queued_ms``; ``data`` -> ``""``."""
    path = name or "data"
    if path.startswith("data"):
        path = path[len("data") :]
    return path.removeprefix(".")


def _detail(exc: JsonSchemaValueException) -> str:
    """The rule part of the message, after fastjsonschema's ``data.x.y``."""
    message: str = exc.message
    prefix = f"{exc.name} "
    return message[len(prefix) :] if exc.name and message.startswith(prefix) else message


def _about_keys(base: str, keys: Iterable[str], problem: str) -> str:
    """``a.b, a.c: <problem>``; ``{s}`` in ``problem`` becomes a plural s if needed."""
    fields = [f"{base}.{key}" if base else key for key in keys]
    problem = problem.format(s="s" if len(fields) > 1 else "")
    if not fields:
        return f"{base or '(message)'}: {problem}"
    return f"{', '.join(fields)}: {problem}"


def _schema_part(exc: JsonSchemaValueException, keyword: str) -> Any:
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    return definition.get(keyword)


def _missing_keys(exc: JsonSchemaValueException) -> list[str]:
    present = exc.value if isinstance(exc.value, dict) else {}
    required = _schema_part(exc, "required") or []
    return [str(key) for key in required if key not in present]


def _unknown_keys(exc: JsonSchemaValueException) -> list[str]:
    present = exc.value if isinstance(exc.value, dict) else {}
    known = _schema_part(exc, "properties") or {}
    return sorted(str(key) for key in present if key not in known)


def _keys_not_allowed_together(exc: JsonSchemaValueException) -> list[str]:
    forbidden = _schema_part(exc, "not")
    if not isinstance(forbidden, dict):
        return []
    return [str(key) for key in forbidden.get("required", [])]


def _all_finite(value: object) -> bool:
    """Whether every float in ``value`` is finite; paths are only built once one is not
    (building one for every field was about half of encoding a bot-stats record)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        items: Iterable[object] = value.values()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return True
    for item in items:
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict | list | tuple) and not _all_finite(item):
            return False
    return True


def _non_finite_path(value: object, path: str) -> str | None:
    """Path of the first NaN or infinite float in ``value``, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path or "(message)"
    children: Iterable[tuple[str, object]]
    if isinstance(value, dict):
        children = ((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        children = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for child_path, item in children:
        found = _non_finite_path(item, child_path)
        if found is not None:
            return found
    return None


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
