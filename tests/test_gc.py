"""`fleetserve gc --keep N` against the real broker: tombstones only what nothing can serve."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner, Result
from confluent_kafka import TopicPartition

from fleetserve.cli.main import cli
from fleetserve.config.settings import KafkaSettings
from fleetserve.deploy.log import read_deployments
from fleetserve.store.frame import chunk_key
from fleetserve.store.kafka_store import KafkaModelStore, ModelTopics
from fleetserve.topics.spec import TopicSet
from support.bots import BotFactory, BuiltBots
from support.kafka import ConsumerFactory

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=1, seed=59)


def run(kafka_bootstrap: str, declared: TopicSet, built: BuiltBots, *args: str) -> Result:
    result = CliRunner().invoke(
        cli,
        [
            "--bootstrap", kafka_bootstrap, "--topic-prefix", declared.prefix,
            "--store", str(built.store_dir), *args,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result


def index_versions(kafka_settings: KafkaSettings, declared: TopicSet) -> set[str]:
    store = KafkaModelStore(kafka_settings, ModelTopics.from_declared(declared))
    try:
        return {entry.version for entry in store.index().entries()}
    finally:
        store.close()


def tombstoned(consumers: ConsumerFactory, location: tuple[str, int, int], key: str) -> bool:
    """Whether a tombstone for ``key`` follows the snapshot's record in its partition."""
    topic, partition, offset = location
    reader = consumers()
    reader.assign([TopicPartition(topic, partition, offset)])
    seen: list[tuple[str, Any]] = []
    for _ in range(50):
        seen += [
            ((m.key() or b"").decode(), m.value())
            for m in reader.consume(100, 0.2)
            if m.error() is None
        ]
        if (key, None) in seen:
            return True
    return False


def test_gc_removes_only_what_no_stage_can_serve_or_roll_back_to(
    kafka_bootstrap: str,
    kafka_settings: KafkaSettings,
    declared: TopicSet,
    built: BuiltBots,
    consumer_factory: ConsumerFactory,
) -> None:
    bot = built.bot_ids[0]
    v0 = built.versions[bot]
    v1, v2, v3 = (built.build(bot, seed=seed) for seed in (1, 2, 3))  # built in this order
    assert len({v0, v1, v2, v3}) == 4
    published = run(kafka_bootstrap, declared, built, "publish", "--all-versions", bot)
    assert "4 snapshots" in published.output
    assert "4 sent" in published.output
    run(kafka_bootstrap, declared, built, "deploy", bot, v0, "--stage", "real")
    run(kafka_bootstrap, declared, built, "deploy", bot, v1, "--stage", "real")  # v0: history

    dry = run(kafka_bootstrap, declared, built, "gc", "--keep", "1", "--dry-run")
    assert "would remove 1 of 4 snapshots" in dry.output
    assert v2 in dry.output
    assert index_versions(kafka_settings, declared) == {v0, v1, v2, v3}

    store = KafkaModelStore(kafka_settings, ModelTopics.from_declared(declared))
    try:
        doomed = store.index().get(f"{bot}/{v2}")
    finally:
        store.close()
    assert doomed is not None
    done = run(kafka_bootstrap, declared, built, "gc", "--keep", "1")
    assert "removed 1 of 4 snapshots" in done.output
    assert index_versions(kafka_settings, declared) == {v0, v1, v3}
    assert tombstoned(consumer_factory, doomed.location, chunk_key(bot, v2, 0))

    # Nothing a stage can roll back to went: the rollback finds v0 where it was.
    rolled = run(kafka_bootstrap, declared, built, "rollback", bot, "--stage", "real")
    assert f"-> {v0}" in rolled.output
    record = read_deployments(kafka_settings, declared.name("deployments"))[bot]
    assert record["stages"]["real"]["model_version"] == v0
    assert record["stages"]["real"]["location"]["topic"] == declared.name("models")
    # A removed version can be deployed again: it is published anew.
    again = run(kafka_bootstrap, declared, built, "deploy", bot, v2, "--stage", "dev")
    assert f"-> {v2}" in again.output
    assert v2 in index_versions(kafka_settings, declared)
    # The rollback took v1 off real and out of its history: nothing names it any more.
    last = run(kafka_bootstrap, declared, built, "gc", "--keep", "1", "--verbose")
    assert "removed 1 of 4" in last.output
    assert index_versions(kafka_settings, declared) == {v0, v2, v3}
