"""Read and validate a topic file; every error names the file, line and field."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml

from fleetserve.errors import TopicSpecError
from fleetserve.topics.spec import REQUIRED_ROLES, TopicSet, resolve

BUNDLED_PACKAGE = "fleetserve.topic_specs"
BUNDLED_NAME = "topics.yaml"


def bundled_topic_file() -> Path:
    return Path(str(files(BUNDLED_PACKAGE).joinpath(BUNDLED_NAME)))


@functools.cache
def _validator() -> Any:
    schema = json.loads(files(BUNDLED_PACKAGE).joinpath("topic-file.schema.json").read_text())
    return fastjsonschema.compile(schema)


def load_topics(path: Path | None, env: str, prefix: str = "") -> TopicSet:
    """The topics of ``env`` from ``path`` (the bundled file when None)."""
    path = path or bundled_topic_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopicSpecError("file not found", path=path, line=None, field="(file)") from None
    except UnicodeDecodeError:
        raise TopicSpecError("not UTF-8 text", path=path, line=None, field="(file)") from None
    document, root = parse_yaml(text, path)
    validate_document(document, root, path)
    if env not in document["environments"]:
        known = ", ".join(sorted(document["environments"]))
        node = _node_at(root, ["environments"])
        raise TopicSpecError(
            f"environment {env!r} is not declared (declared: {known})",
            path=path,
            line=_line(node),
            field="environments",
        )
    return resolve(document, env, prefix)


def parse_yaml(text: str, path: Path) -> tuple[Any, yaml.Node | None]:
    """Data plus the node tree, which knows where each value was written."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        _reject_duplicate_keys(root, path)
        return yaml.safe_load(text), root
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise TopicSpecError(
            f"invalid YAML: {exc.problem}", path=path, line=line, field="(syntax)"
        ) from None


def validate_document(document: Any, root: yaml.Node | None, path: Path) -> None:
    try:
        _validator()(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _spec_error(exc, root, path) from None
    missing = [role for role in REQUIRED_ROLES if role not in document["topics"]]
    if missing:
        raise TopicSpecError(
            f"required roles are not declared: {', '.join(missing)}",
            path=path,
            line=_line(_node_at(root, ["topics"])),
            field="topics",
        )
    _check_override_roles(document, root, path)


def _check_override_roles(document: Mapping[str, Any], root: yaml.Node | None, path: Path) -> None:
    for env, overrides in document["environments"].items():
        for role in overrides.get("topics", {}):
            if role not in document["topics"]:
                where = ["environments", env, "topics", role]
                raise TopicSpecError(
                    f"overrides a topic role that is not declared: {role!r}",
                    path=path,
                    line=_line(_node_at(root, where, key=True)),
                    field=".".join(where),
                )


def _spec_error(
    exc: fastjsonschema.JsonSchemaValueException, root: yaml.Node | None, path: Path
) -> TopicSpecError:
    where = [str(part) for part in exc.path[1:]]
    message = exc.message.removeprefix(str(exc.name)).strip()
    if exc.rule == "additionalProperties" and isinstance(exc.value, Mapping):
        allowed = set((exc.definition or {}).get("properties", {}))
        unknown = sorted(set(exc.value) - allowed)
        if unknown:
            where.append(unknown[0])
            choices = ", ".join(sorted(allowed)) or "(none)"
            line = _line(_node_at(root, where, key=True))
            return TopicSpecError(
                f"unknown key {unknown[0]!r}; allowed: {choices}",
                path=path,
                line=line,
                field=".".join(where),
            )
    if exc.rule == "required" and isinstance(exc.rule_definition, list):
        missing = [k for k in exc.rule_definition if k not in (exc.value or {})]
        message = f"missing required key(s): {', '.join(missing)}"
    line = _line(_node_at(root, where))
    return TopicSpecError(message, path=path, line=line, field=".".join(where) or "(top)")


def _node_at(root: yaml.Node | None, where: list[str], *, key: bool = False) -> yaml.Node | None:
    """The node at a path of mapping keys; with ``key`` the key node of the last step."""
    node = root
    for step, part in enumerate(where):
        if not isinstance(node, yaml.MappingNode):
            return node
        found = next(((k, v) for k, v in node.value if k.value == part), None)
        if found is None:
            return node
        last = step == len(where) - 1
        node = found[0] if key and last else found[1]
    return node


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _reject_duplicate_keys(node: yaml.Node | None, path: Path) -> None:
    """PyYAML keeps the last of two equal keys silently; a topic file must not."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                raise TopicSpecError(
                    "duplicate key", path=path, line=_line(key), field=str(key.value)
                )
            seen.add(key.value)
            _reject_duplicate_keys(value, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, path)
