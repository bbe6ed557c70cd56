"""Load the packaged JSON Schemas and compile each one once."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Final, NoReturn

import fastjsonschema
import orjson

SCHEMA_PACKAGE: Final = "fleetserve.schemas"
SCHEMA_VERSION: Final = 1
"""The one version of every contract this code reads and writes."""

Validator = Callable[[Any], Any]


class MessageKind(enum.StrEnum):
    """The message contracts."""

    QUERY = "query"
    REPLY = "reply"
    DEAD_LETTER = "dead_letter"
    DEPLOYMENT = "deployment"
    BOT_STATS = "bot_stats"


def schema_dir() -> Traversable:
    """The folder holding the schema files and their examples."""
    return resources.files(SCHEMA_PACKAGE)


def schema_filename(kind: MessageKind) -> str:
    """File name of a kind's schema, e.g. ``query.v1.json``."""
    return f"{kind.value}.v{SCHEMA_VERSION}.json"


@functools.cache
def load_schema(kind: MessageKind) -> Mapping[str, Any]:
    """The parsed schema of a kind; shared, so callers must not mutate it."""
    schema: dict[str, Any] = orjson.loads(schema_dir().joinpath(schema_filename(kind)).read_bytes())
    return schema


def _refuse_remote_ref(uri: str) -> NoReturn:
    raise fastjsonschema.JsonSchemaDefinitionException(
        f"remote $ref {uri!r} refused: fleetserve schemas are self-contained"
    )


@functools.cache
def validator(kind: MessageKind) -> Validator:
    """The compiled validator of a kind; it raises ``JsonSchemaValueException``.

    Defaults are not filled in: validation never changes the message, so what
    is encoded is exactly what was given.
    """
    refuse = dict.fromkeys(("http", "https", "file", "urn"), _refuse_remote_ref)
    compiled: Validator = fastjsonschema.compile(
        dict(load_schema(kind)), handlers=refuse, use_default=False, use_formats=False
    )
    return compiled


def preload(kinds: Iterable[MessageKind] = tuple(MessageKind)) -> None:
    """Compile these schemas now (default: all), so a broken schema fails at start-up, not
    on a message, and no message waits for its validator to compile (13.5 ms for a query's)."""
    for kind in kinds:
        validator(kind)
