"""`fleetserve topics apply / check / list` against the real broker."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from click.testing import CliRunner, Result
from confluent_kafka.admin import AdminClient

from fleetserve.broker.embedded import free_loopback_port
from fleetserve.cli.exit_codes import KAFKA_UNAVAILABLE, TOPIC_DRIFT
from fleetserve.cli.main import cli
from fleetserve.topics.admin import observe_topics
from fleetserve.topics.loader import load_topics
from fleetserve.topics.spec import REQUIRED_ROLES

pytestmark = pytest.mark.kafka

Run = Callable[..., Result]


@pytest.fixture
def run(kafka_bootstrap: str, topic_prefix: str) -> Run:
    def invoke(*args: str) -> Result:
        base = [
            "--bootstrap",
            kafka_bootstrap,
            "--topic-prefix",
            topic_prefix,
            "--topic-env",
            "local",
        ]
        return CliRunner().invoke(cli, [*base, *args], catch_exceptions=False)

    return invoke


def test_apply_creates_every_declared_topic_as_declared(
    run: Run, admin: AdminClient, topic_prefix: str
) -> None:
    declared = load_topics(None, "local", topic_prefix).by_name()
    result = run("topics", "apply")
    assert result.exit_code == 0, result.output
    assert f"{len(declared)} created, 0 unchanged, 0 drifted" in result.output
    observed = observe_topics(admin)
    for name, spec in declared.items():
        assert observed[name].partitions == spec.partitions
        assert observed[name].replication_factor == spec.replication_factor
        for key, value in spec.configs.items():
            assert observed[name].configs.get(key) == value, (name, key)


def test_apply_is_idempotent(run: Run) -> None:
    first = run("topics", "apply")
    assert first.exit_code == 0, first.output
    before = sorted(line for line in first.output.splitlines() if line.startswith("created"))
    second = run("topics", "apply")
    assert second.exit_code == 0, second.output
    assert f"0 created, {len(before)} unchanged, 0 drifted" in second.output
    assert not [line for line in second.output.splitlines() if line.startswith("created")]
    check = run("topics", "check")
    assert check.exit_code == 0, check.output
    assert f"in sync: {len(before)} topics" in check.output


def test_apply_reports_partition_drift_and_still_creates_the_rest(
    run: Run, topic_factory: Callable[..., str], topic_prefix: str, admin: AdminClient
) -> None:
    queries = f"{topic_prefix}fleetserve.queries"
    topic_factory(queries, partitions=2, config={"cleanup.policy": "delete"})
    result = run("topics", "apply")
    assert result.exit_code == TOPIC_DRIFT, result.output
    assert f"drift      {queries}: partitions is 2, declared 12" in result.output
    others = len(REQUIRED_ROLES) - 1
    assert f"{others} created, 0 unchanged" in result.output
    assert observe_topics(admin)[queries].partitions == 2, "apply must never repartition"
    again = run("topics", "apply")
    assert again.exit_code == TOPIC_DRIFT
    assert f"0 created, {others} unchanged" in again.output


def test_check_changes_nothing_and_reports_missing(
    run: Run, admin: AdminClient, topic_prefix: str
) -> None:
    result = run("topics", "check")
    assert result.exit_code == TOPIC_DRIFT
    assert f"missing  {topic_prefix}fleetserve.queries" in result.output
    assert not [n for n in admin.list_topics(timeout=10).topics if n.startswith(topic_prefix)]


def test_list_shows_declared_topics_with_their_state(run: Run, topic_prefix: str) -> None:
    before = run("topics", "list", "--json")
    assert before.exit_code == 0, before.output
    rows = [orjson.loads(line) for line in before.output.splitlines()]
    assert {row["status"] for row in rows} == {"missing"}
    assert run("topics", "apply").exit_code == 0
    table = run("topics", "list")
    assert table.exit_code == 0
    rows = table.output.splitlines()
    line = next(row for row in rows if row.startswith(f"{topic_prefix}fleetserve.deployments"))
    assert line.split()[1:5] == ["deployments", "present", "3", "1"]
    assert "compact" in line


def test_unreachable_cluster_is_a_clear_bounded_error() -> None:
    address = f"127.0.0.1:{free_loopback_port()}"
    result = CliRunner().invoke(cli, ["--bootstrap", address, "topics", "apply", "--timeout", "2"])
    assert result.exit_code == KAFKA_UNAVAILABLE
    assert f"Kafka at {address} did not answer a metadata request within 2s" in result.output
