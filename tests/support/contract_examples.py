"""The contracts' own examples (schemas/examples), and how tests read a codec error's fields."""

from __future__ import annotations

from typing import Any

import orjson

from fleetserve.contracts.schemas import (
    MessageKind,
    schema_dir,
)

# One segment per joinpath: on 3.11 a namespace package's MultiplexedPath takes no more.
EXAMPLES = schema_dir().joinpath("examples")


def named_fields(message: str) -> list[str]:
    """The fields a codec message is about: ``a.b, c: problem`` -> ``["a.b", "c"]``."""
    head, _, _ = message.partition(": ")
    return head.split(", ")


def read_example(kind: MessageKind, name: str) -> bytes:
    return EXAMPLES.joinpath(kind.value).joinpath(name).read_bytes()


def example(kind: MessageKind, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(read_example(kind, name))
    return loaded


def minimal_query() -> dict[str, Any]:
    return example(MessageKind.QUERY, "valid-minimal.json")
