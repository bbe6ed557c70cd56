"""The models topic as an artifact store, against the real broker with real snapshots.

Publishing (idempotent, chunked), reading by location and by key, the disk cache, and
every failure a worker must turn into a dead letter or a retry: missing, truncated,
another sha256, a fetch that times out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from fleetserve.broker.embedded import free_loopback_port
from fleetserve.cache.loader import SnapshotLoader
from fleetserve.config.settings import KafkaSettings
from fleetserve.core.route import Route
from fleetserve.deploy.placement import PublishingPlacement, TopicPlacement
from fleetserve.errors import (
    ArtifactCorrupt,
    ArtifactMissing,
    DeploymentRefused,
    KafkaUnavailable,
    QueryFailed,
)
from fleetserve.kafka.clients import producer
from fleetserve.store.base import SnapshotRequest
from fleetserve.store.disk_cache import DiskCache
from fleetserve.store.frame import RECORD_HEADROOM, split_snapshot
from fleetserve.store.kafka_store import KafkaModelStore, ModelTopics
from fleetserve.topics.spec import TopicSet
from support.bots import BotFactory, BuiltBots

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=3, seed=41)


@pytest.fixture
def topics(declared: TopicSet) -> ModelTopics:
    return ModelTopics.from_declared(declared)


@pytest.fixture
def store(kafka_settings: KafkaSettings, topics: ModelTopics) -> Iterator[KafkaModelStore]:
    opened = KafkaModelStore(kafka_settings, topics, fetch_timeout_s=10)
    yield opened
    opened.close()


def request(built: BuiltBots, bot: str, **changes: object) -> SnapshotRequest:
    version = built.versions[bot]
    base = SnapshotRequest(bot, version, built.sha256s[(bot, version)])
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def published(built: BuiltBots, store: KafkaModelStore) -> dict[str, SnapshotRequest]:
    """Every bot's snapshot published; the request a deployment naming it would make."""
    placement = PublishingPlacement(built.store, store)
    placed = placement.place_many([(bot, built.versions[bot]) for bot in built.bot_ids])
    return {
        bot: request(built, bot, location=p.location)
        for bot, p in zip(built.bot_ids, placed, strict=True)
    }


def test_publish_then_fetch_by_location_every_byte_checked(
    built: BuiltBots, store: KafkaModelStore
) -> None:
    requests = published(built, store)
    for bot, wanted in requests.items():
        assert wanted.location is not None
        assert wanted.location[0] == store.topics.models
        snapshot = store.read_snapshot(wanted)
        assert snapshot.model == built.store.read_model(bot, built.versions[bot])
        assert snapshot.manifest == built.store.read_manifest(bot, built.versions[bot])


def test_publishing_again_sends_nothing(built: BuiltBots, store: KafkaModelStore) -> None:
    first = published(built, store)
    placement = PublishingPlacement(built.store, store)
    again = placement.place_many([(bot, built.versions[bot]) for bot in built.bot_ids])
    assert [p.sent for p in again] == [False] * len(first)
    assert [p.location for p in again] == [r.location for r in first.values()]
    # A second process learns the same from the index topic alone.
    fresh = KafkaModelStore(store.kafka, store.topics)
    try:
        placement = PublishingPlacement(built.store, fresh)
        assert not any(
            p.sent for p in placement.place_many([(b, built.versions[b]) for b in first])
        )
    finally:
        fresh.close()


def test_a_model_larger_than_the_topic_allows_travels_in_chunks(
    built: BuiltBots, kafka_settings: KafkaSettings, topics: ModelTopics
) -> None:
    small = dataclasses.replace(topics, record_limit=RECORD_HEADROOM + 40_000)
    chunked = KafkaModelStore(kafka_settings, small, fetch_timeout_s=10)
    try:
        requests = published(built, chunked)
        for bot, wanted in requests.items():
            entry = chunked.index().get(wanted.key)
            assert entry is not None
            assert entry.chunks >= 3
            assert chunked.read_snapshot(wanted).model == built.store.read_model(
                bot, built.versions[bot]
            )
    finally:
        chunked.close()


def test_a_deployment_without_a_location_is_found_through_the_index(
    built: BuiltBots, store: KafkaModelStore
) -> None:
    published(built, store)
    bot = built.bot_ids[0]
    reader = KafkaModelStore(store.kafka, store.topics)  # a worker that never published
    try:
        snapshot = reader.read_snapshot(request(built, bot))
        assert snapshot.model == built.store.read_model(bot, built.versions[bot])
        with pytest.raises(ArtifactMissing, match="has no entry"):
            reader.read_snapshot(request(built, bot, version="0123456789abcdef"))
    finally:
        reader.close()


def test_nothing_at_the_location_is_missing(built: BuiltBots, store: KafkaModelStore) -> None:
    requests = published(built, store)
    first, second = (requests[b] for b in built.bot_ids[:2])
    assert first.location is not None
    assert second.location is not None
    past_end = dataclasses.replace(first, location=(*first.location[:2], 10_000))
    with pytest.raises(ArtifactMissing, match="past the end"):
        store.read_snapshot(past_end)
    # Another snapshot's location (as after compaction moved on): the key says it is not ours.
    with pytest.raises(ArtifactMissing, match="no longer holds it"):
        store.read_snapshot(dataclasses.replace(first, location=second.location))


def test_another_sha256_is_corrupt(built: BuiltBots, store: KafkaModelStore) -> None:
    wanted = published(built, store)[built.bot_ids[0]]
    with pytest.raises(ArtifactCorrupt, match="the deployment says"):
        store.read_snapshot(dataclasses.replace(wanted, sha256="f" * 64))


def test_a_truncated_snapshot_is_corrupt(
    built: BuiltBots, store: KafkaModelStore, kafka_settings: KafkaSettings
) -> None:
    """Only the first of its chunks reached the topic (a publisher died half way)."""
    bot = built.bot_ids[1]
    wanted = request(built, bot)
    manifest = orjson.dumps(built.store.read_manifest(bot, wanted.version))
    model = built.store.read_model(bot, wanted.version)
    first, *_ = split_snapshot(
        bot, wanted.version, manifest, model, wanted.sha256, RECORD_HEADROOM + 50_000
    )
    client = producer(kafka_settings)
    locations: list[tuple[str, int, int]] = []
    client.produce(
        store.topics.models,
        key=first.key.encode(),
        value=first.value,
        headers=list(first.headers),
        partition=0,
        on_delivery=lambda _e, m: locations.append(
            (m.topic() or "", m.partition() or 0, m.offset() or 0)
        ),
    )
    client.flush(10)
    with pytest.raises(ArtifactCorrupt, match="truncated"):
        store.read_snapshot(dataclasses.replace(wanted, location=locations[0]))


def test_an_unreachable_topic_times_out_as_a_retriable_error(
    built: BuiltBots, topics: ModelTopics
) -> None:
    nowhere = KafkaSettings(f"127.0.0.1:{free_loopback_port()}")
    unreachable = KafkaModelStore(nowhere, topics, fetch_timeout_s=1.0)
    try:
        with pytest.raises(KafkaUnavailable, match="within 1s"):
            unreachable.read_snapshot(
                request(built, built.bot_ids[0], location=(topics.models, 0, 0))
            )
    finally:
        unreachable.close()


def test_the_disk_cache_serves_a_restart_without_the_topic(
    built: BuiltBots, store: KafkaModelStore, tmp_path: Path
) -> None:
    wanted = published(built, store)[built.bot_ids[0]]
    first = KafkaModelStore(store.kafka, store.topics, disk_cache=DiskCache(tmp_path, 10**8))
    try:
        fetched = first.read_snapshot(wanted)
        assert first.fetches == 1
    finally:
        first.close()
    nowhere = KafkaSettings(f"127.0.0.1:{free_loopback_port()}")
    restarted = KafkaModelStore(
        nowhere, store.topics, disk_cache=DiskCache(tmp_path, 10**8), fetch_timeout_s=1.0
    )
    try:
        assert restarted.read_snapshot(wanted) == fetched
        assert restarted.fetches == 0
    finally:
        restarted.close()


# -- through the worker's loader: the reason codes ---------------------------------------------


def route_of(wanted: SnapshotRequest) -> Route:
    return Route(wanted.bot_id, "real", wanted.version, wanted.sha256, location=wanted.location)


def load_failure(loader: SnapshotLoader, route: Route) -> QueryFailed:
    with pytest.raises(QueryFailed) as caught:
        loader(route)
    assert caught.value.phase == "load"
    return caught.value


def test_the_loader_names_each_failure(built: BuiltBots, store: KafkaModelStore) -> None:
    wanted = published(built, store)[built.bot_ids[0]]
    loader = SnapshotLoader(store, max_model_bytes=16 * 2**20)
    model = loader(route_of(wanted))
    assert model.metadata.labels
    assert wanted.location is not None
    gone = dataclasses.replace(wanted, location=(*wanted.location[:2], 10_000))
    assert load_failure(loader, route_of(gone)).reason == "model_missing"
    other = dataclasses.replace(wanted, sha256="f" * 64)
    assert load_failure(loader, route_of(other)).reason == "model_corrupt"
    nowhere = KafkaSettings(f"127.0.0.1:{free_loopback_port()}")
    unreachable = KafkaModelStore(nowhere, store.topics, fetch_timeout_s=0.5)
    try:
        failure = load_failure(SnapshotLoader(unreachable), route_of(wanted))
        assert failure.retriable
        assert "transient, will retry" in str(failure)
    finally:
        unreachable.close()


def test_deploy_from_the_topic_refuses_what_is_not_there(
    built: BuiltBots, store: KafkaModelStore
) -> None:
    placement = TopicPlacement(store)
    bot = built.bot_ids[2]
    with pytest.raises(DeploymentRefused, match="publish it first"):
        placement.place(bot, built.versions[bot])
    wanted = published(built, store)[bot]
    placed = placement.place(bot, built.versions[bot])
    assert (placed.sha256, placed.location) == (wanted.sha256, wanted.location)
