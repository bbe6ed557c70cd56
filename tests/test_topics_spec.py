"""The topic file: parsing, per-environment overrides and errors with line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetserve.cli.exit_codes import BAD_CONFIG
from fleetserve.cli.main import cli
from fleetserve.errors import TopicSpecError
from fleetserve.topics.loader import bundled_topic_file, load_topics
from fleetserve.topics.spec import REQUIRED_ROLES

REPO_TOPIC_FILE = Path(__file__).parents[1] / "topics" / "topics.yaml"

MINIMAL = """\
version: 1
topics:
{topics}
environments:
  prod: {{}}
  local:
    replication_factor: 1
    min_insync_replicas: 1
"""


def topic_block(role: str, **fields: object) -> str:
    body = {
        "name": f"fs.{role}",
        "partitions": 3,
        "replication_factor": 3,
        "min_insync_replicas": 2,
        "cleanup_policy": "delete",
        **fields,
    }
    lines = [f"  {role}:"] + [f"    {key}: {value}" for key, value in body.items()]
    return "\n".join(lines)


def write_topic_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(text)
    return path


def minimal_file(**extra_fields: object) -> str:
    blocks = [
        topic_block(role, **(extra_fields if role == "queries" else {})) for role in REQUIRED_ROLES
    ]
    return MINIMAL.format(topics="\n".join(blocks))


def line_of(text: str, needle: str) -> int:
    """The line that starts (after indentation) with ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.strip().startswith(needle))


def test_bundled_file_is_the_repository_file() -> None:
    assert bundled_topic_file().read_bytes() == REPO_TOPIC_FILE.read_bytes()


def test_repository_file_declares_every_role_for_both_environments() -> None:
    for env in ("prod", "local"):
        topics = load_topics(REPO_TOPIC_FILE, env)
        assert set(REQUIRED_ROLES) <= set(topics.topics)
    prod = load_topics(REPO_TOPIC_FILE, "prod")
    assert all(spec.replication_factor == 3 for spec in prod.topics.values())
    assert all(spec.configs["min.insync.replicas"] == "2" for spec in prod.topics.values())
    assert prod.topics["deployments"].configs["cleanup.policy"] == "compact"


def test_local_environment_overrides_replication_only() -> None:
    prod = load_topics(REPO_TOPIC_FILE, "prod")
    local = load_topics(REPO_TOPIC_FILE, "local")
    for role, spec in local.topics.items():
        assert spec.replication_factor == 1
        assert spec.configs["min.insync.replicas"] == "1"
        assert spec.partitions == prod.topics[role].partitions
        assert spec.name == prod.topics[role].name


def test_prefix_applies_to_every_name() -> None:
    topics = load_topics(REPO_TOPIC_FILE, "local", prefix="ci-7.")
    assert all(spec.name.startswith("ci-7.fleetserve.") for spec in topics.topics.values())
    assert topics.name("queries") == "ci-7.fleetserve.queries"


def test_per_topic_environment_override(tmp_path: Path) -> None:
    text = minimal_file() + "    topics:\n      queries:\n        partitions: 1\n"
    topics = load_topics(write_topic_file(tmp_path, text), "local")
    assert topics.topics["queries"].partitions == 1
    assert topics.topics["replies"].partitions == 3


def test_unknown_key_is_rejected_with_line_and_field(tmp_path: Path) -> None:
    text = minimal_file(partitons=12)
    path = write_topic_file(tmp_path, text)
    with pytest.raises(TopicSpecError) as caught:
        load_topics(path, "local")
    error = caught.value
    assert error.field == "topics.queries.partitons"
    assert error.line == line_of(text, "partitons")
    assert f"{path}:{error.line}" in str(error)
    assert "unknown key 'partitons'" in str(error)


def test_zero_partitions_is_rejected_with_line_and_field(tmp_path: Path) -> None:
    text = minimal_file().replace(
        "name: fs.replies\n    partitions: 3", "name: fs.replies\n    partitions: 0"
    )
    path = write_topic_file(tmp_path, text)
    with pytest.raises(TopicSpecError) as caught:
        load_topics(path, "local")
    assert caught.value.field == "topics.replies.partitions"
    assert caught.value.line == line_of(text, "partitions: 0")
    assert "bigger than or equal to 1" in caught.value.detail


@pytest.mark.parametrize(
    ("mutation", "field", "needle"),
    [
        (
            ("cleanup_policy: delete", "cleanup_policy: forever", 1),
            "topics.queries.cleanup_policy",
            "cleanup_policy: forever",
        ),
        (
            ("replication_factor: 3", "replication_factor: three", 1),
            "topics.queries.replication_factor",
            "replication_factor: three",
        ),
        (
            ("  prod: {}", "  prod: {}\n  staging:\n    replicas: 2", 1),
            "environments.staging.replicas",
            "replicas: 2",
        ),
    ],
)
def test_bad_values_name_their_field(
    tmp_path: Path, mutation: tuple[str, str, int], field: str, needle: str
) -> None:
    old, new, count = mutation
    text = minimal_file().replace(old, new, count)
    with pytest.raises(TopicSpecError) as caught:
        load_topics(write_topic_file(tmp_path, text), "local")
    assert caught.value.field == field
    assert caught.value.line == line_of(text, needle)


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    text = minimal_file().replace("    cleanup_policy: delete\n", "", 1)
    with pytest.raises(TopicSpecError, match=r"missing required key.*cleanup_policy") as caught:
        load_topics(write_topic_file(tmp_path, text), "local")
    assert caught.value.field == "topics.queries"


def test_missing_role_is_rejected(tmp_path: Path) -> None:
    blocks = [topic_block(role) for role in REQUIRED_ROLES if role != "retry"]
    text = MINIMAL.format(topics="\n".join(blocks))
    with pytest.raises(TopicSpecError, match="required roles are not declared: retry"):
        load_topics(write_topic_file(tmp_path, text), "local")


def test_duplicate_key_is_rejected(tmp_path: Path) -> None:
    text = minimal_file().replace(
        "    partitions: 3\n", "    partitions: 3\n    partitions: 6\n", 1
    )
    with pytest.raises(TopicSpecError, match="duplicate key") as caught:
        load_topics(write_topic_file(tmp_path, text), "local")
    assert caught.value.field == "partitions"
    assert caught.value.line == line_of(text, "partitions: 6")


def test_unknown_environment_lists_the_declared_ones(tmp_path: Path) -> None:
    with pytest.raises(
        TopicSpecError, match=r"'staging' is not declared \(declared: local, prod\)"
    ):
        load_topics(write_topic_file(tmp_path, minimal_file()), "staging")


def test_override_of_undeclared_role_is_rejected(tmp_path: Path) -> None:
    text = minimal_file() + "    topics:\n      querys:\n        partitions: 1\n"
    with pytest.raises(TopicSpecError) as caught:
        load_topics(write_topic_file(tmp_path, text), "local")
    assert caught.value.field == "environments.local.topics.querys"
    assert caught.value.line == line_of(text, "querys")


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    text = minimal_file() + "  broken: [\n"
    with pytest.raises(TopicSpecError, match="invalid YAML") as caught:
        load_topics(write_topic_file(tmp_path, text), "local")
    assert caught.value.line is not None


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TopicSpecError, match="file not found"):
        load_topics(tmp_path / "nope.yaml", "local")


def test_cli_rejects_an_invalid_file_before_touching_the_network(tmp_path: Path) -> None:
    text = minimal_file(partitons=12)
    path = write_topic_file(tmp_path, text)
    # Nothing listens on port 1: the file error must come first, and fast.
    args = ["--bootstrap", "127.0.0.1:1", "--topic-file", str(path), "topics", "apply"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == BAD_CONFIG
    line = line_of(text, "partitons")
    assert f"{path}:{line}: topics.queries.partitons: unknown key 'partitons'" in result.output
