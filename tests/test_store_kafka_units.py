"""The models topic's pure parts: record layout, reassembly, index entries, disk cache, gc plan.

No broker here; `test_store_kafka.py` runs the same paths against the real one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from fleetserve.config.serving import serving_settings
from fleetserve.config.settings import DEFAULT_STORE_DIR
from fleetserve.config.sources import build_settings
from fleetserve.deploy import records
from fleetserve.errors import (
    ArtifactCorrupt,
    ArtifactError,
    ArtifactMissing,
    ArtifactTooLarge,
    ConfigError,
    ContractError,
)
from fleetserve.store.assembly import Assembly
from fleetserve.store.base import SnapshotRequest, sha256_hex
from fleetserve.store.disk_cache import DiskCache
from fleetserve.store.frame import (
    HEADER_CHUNK,
    RECORD_HEADROOM,
    ChunkRecord,
    chunk_info,
    decode_frame,
    split_snapshot,
)
from fleetserve.store.index import IndexEntry
from fleetserve.store.retention import KEPT_NAMED, plan

MODEL = os.urandom(10_000)
SHA = sha256_hex(MODEL)
MANIFEST = orjson.dumps({"bot_id": "bank", "version": "v1", "model": {"sha256": SHA}})


def chunks(limit: int = 1_000_000, model: bytes = MODEL, sha: str = SHA) -> list[ChunkRecord]:
    return split_snapshot("bank", "v1", MANIFEST, model, sha, limit)


def request(**changes: Any) -> SnapshotRequest:
    values: dict[str, Any] = {"bot_id": "bank", "version": "v1", "sha256": SHA, **changes}
    return SnapshotRequest(**values)


def assemble(records_: list[ChunkRecord], first: int = 10, **changes: Any) -> Assembly:
    """Feed chunks at consecutive offsets from ``first``; the assembly after the last."""
    assembly = Assembly(request(**changes), "models[0]@10", 10)
    for offset, chunk in enumerate(records_, start=first):
        assembly.add(offset, chunk.key.encode(), chunk.value, list(chunk.headers))
    return assembly


# -- layout -----------------------------------------------------------------------------------


def test_a_small_model_is_one_record_keyed_bot_slash_version() -> None:
    [only] = chunks()
    assert only.key == "bank/v1"
    manifest, payload = decode_frame(only.value)
    assert (manifest, payload) == (MANIFEST, MODEL)
    info = chunk_info(list(only.headers))
    assert (info.sha256, info.size, info.index, info.count) == (SHA, len(MODEL), 0, 1)


def test_a_model_larger_than_a_record_is_chunked_within_the_limit() -> None:
    limit = RECORD_HEADROOM + 3_000
    parts = chunks(limit)
    assert len(parts) > 3
    assert [p.key for p in parts[:3]] == ["bank/v1", "bank/v1#1", "bank/v1#2"]
    assert all(len(p.value) <= limit - RECORD_HEADROOM for p in parts)
    assert b"".join(decode_frame(p.value)[1] for p in parts) == MODEL
    assert {decode_frame(p.value)[0] for p in parts[1:]} == {b""}  # manifest only in the first


def test_a_manifest_that_cannot_fit_a_record_is_refused() -> None:
    with pytest.raises(ArtifactError, match="does not fit"):
        chunks(RECORD_HEADROOM + len(MANIFEST))


def test_malformed_headers_and_frames_are_corrupt() -> None:
    with pytest.raises(ArtifactCorrupt):
        chunk_info([(HEADER_CHUNK, b"3/2")])
    with pytest.raises(ArtifactCorrupt, match="magic"):
        decode_frame(b"XXXX\x00\x00\x00\x00")
    with pytest.raises(ArtifactCorrupt, match="truncated"):
        decode_frame(b"FSM1\x00\x00\x01\x00{}")


# -- reassembly -------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1_000_000, RECORD_HEADROOM + 2_500])
def test_every_byte_comes_back_verified(limit: int) -> None:
    assembly = assemble(chunks(limit))
    assert assembly.complete
    snapshot = assembly.snapshot()
    assert snapshot.model == MODEL
    assert snapshot.manifest["model"]["sha256"] == SHA


def test_another_snapshot_between_the_chunks_and_a_second_copy_are_skipped() -> None:
    mine = chunks(RECORD_HEADROOM + 4_000)
    other = split_snapshot("bank", "v2", MANIFEST, b"x" * 100, "c" * 64, 1_000_000)
    feed = [mine[0], other[0], mine[1], mine[0], mine[1], *mine[2:]]
    assert assemble(feed).snapshot().model == MODEL


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"bank/v0", b"x", "found 'bank/v0'"),  # compacted away: the next record is another
        (b"bank/v1", None, "tombstone"),  # removed by gc
    ],
)
def test_no_snapshot_at_the_location_is_missing(
    key: bytes, value: bytes | None, reason: str
) -> None:
    assembly = Assembly(request(), "models[0]@10", 10)
    with pytest.raises(ArtifactMissing, match=reason):
        assembly.add(10, key, value, list(chunks()[0].headers))


def test_a_record_after_the_location_means_the_location_was_compacted() -> None:
    [only] = chunks()
    assembly = Assembly(request(), "models[0]@10", 10)
    with pytest.raises(ArtifactMissing):
        assembly.add(11, only.key.encode(), only.value, list(only.headers))


def test_the_end_of_the_partition_before_the_first_record_is_missing() -> None:
    with pytest.raises(ArtifactMissing, match="past its end"):
        Assembly(request(), "models[0]@10", 10).end_of_partition()


def test_another_sha256_is_refused_before_anything_else_is_read() -> None:
    with pytest.raises(ArtifactCorrupt, match="the deployment says"):
        assemble(chunks(), sha256="d" * 64)


def test_a_model_over_the_cap_is_refused_from_its_headers() -> None:
    parts = chunks(RECORD_HEADROOM + 3_000)
    assembly = Assembly(request(max_bytes=5_000), "models[0]@10", 10)
    with pytest.raises(ArtifactTooLarge, match="not read further"):
        assembly.add(10, parts[0].key.encode(), parts[0].value, list(parts[0].headers))


def test_a_missing_chunk_is_truncated() -> None:
    parts = chunks(RECORD_HEADROOM + 2_500)
    del parts[1]
    with pytest.raises(ArtifactCorrupt, match="truncated"):
        assemble(parts)


def test_a_missing_last_chunk_is_truncated_at_the_end_of_the_partition() -> None:
    assembly = assemble(chunks(RECORD_HEADROOM + 2_500)[:-1])
    assert not assembly.complete
    with pytest.raises(ArtifactCorrupt, match="truncated"):
        assembly.end_of_partition()


def test_bytes_that_do_not_hash_to_the_deployment_are_corrupt() -> None:
    flipped = bytearray(MODEL)
    flipped[100] ^= 0xFF
    # Headers that claim the right sha256 over other bytes: only hashing finds it.
    forged = split_snapshot("bank", "v1", MANIFEST, bytes(flipped), SHA, 1_000_000)
    with pytest.raises(ArtifactCorrupt, match="hash to"):
        assemble(forged).snapshot()


# -- index entries ----------------------------------------------------------------------------


def entry(bot: str, version: str, created: str, **changes: Any) -> IndexEntry:
    values: dict[str, Any] = {
        "bot_id": bot,
        "version": version,
        "sha256": sha256_hex(version.encode()),
        "size_bytes": 100,
        "chunks": 1,
        "location": ("fleetserve.models", 1, 7),
        "published_at_ms": 1_800_000_000_000,
        "created_at": created,
        **changes,
    }
    return IndexEntry(**values)


def test_index_entries_round_trip_and_bad_ones_are_skipped() -> None:
    one = entry("bank", "v1", "2026-01-01T00:00:00.000+00:00")
    assert IndexEntry.decode(one.key, one.encode()) == one
    with pytest.raises(ContractError):
        IndexEntry.decode("bank/v2", one.encode())  # key and body disagree
    with pytest.raises(ContractError):
        IndexEntry.decode(one.key, orjson.dumps({**orjson.loads(one.encode()), "offset": "7"}))
    with pytest.raises(ContractError):
        IndexEntry.decode(one.key, b"not json")


# -- gc's plan --------------------------------------------------------------------------------


def deployment(bot: str, *history: str) -> dict[str, Any]:
    """``history`` deployed on real in order: the last is live, the others its history."""
    record = None
    for version in history:
        record = records.deploy(
            record, bot_id=bot, stage="real", model_version=version,
            sha256=sha256_hex(version.encode()), actor="t", now_ms=1_800_000_000_000,
        )  # fmt: skip
    assert record is not None
    return record


def test_gc_keeps_the_newest_and_everything_a_stage_can_roll_back_to() -> None:
    days = [f"2026-01-{d:02d}T00:00:00.000+00:00" for d in range(1, 7)]
    entries = [entry("bank", f"v{i}", days[i]) for i in range(6)]
    entries.append(entry("shop", "s0", days[0]))
    deployments = {"bank": deployment("bank", "v0", "v2")}  # v2 live, v0 in its history
    verdicts = {(v.entry.bot_id, v.entry.version): v for v in plan(entries, deployments, keep=2)}
    removed = {key for key, v in verdicts.items() if v.remove}
    assert removed == {("bank", "v1"), ("bank", "v3")}
    assert verdicts[("bank", "v0")].why == KEPT_NAMED  # the oldest, but a rollback target
    assert not verdicts[("shop", "s0")].remove  # an undeployed bot keeps its newest too
    assert {k for k, v in verdicts.items() if not v.remove and v.why != KEPT_NAMED} == {
        ("bank", "v4"), ("bank", "v5"), ("shop", "s0"),
    }  # fmt: skip


def test_gc_with_keep_zero_still_keeps_what_is_named() -> None:
    entries = [entry("bank", "v0", "2026-01-01"), entry("bank", "v1", "2026-01-02")]
    verdicts = plan(entries, {"bank": deployment("bank", "v0")}, keep=0)
    assert [(v.entry.version, v.remove) for v in verdicts] == [("v1", True), ("v0", False)]


# -- the disk cache ---------------------------------------------------------------------------


def test_disk_cache_round_trip_is_verified(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 10**6)
    assert cache.get(SHA) is None
    cache.put(SHA, MANIFEST, MODEL)
    hit = cache.get(SHA)
    assert hit is not None
    assert hit.model == MODEL
    assert (cache.hits, cache.misses) == (1, 1)
    with pytest.raises(ArtifactTooLarge):
        cache.get(SHA, max_bytes=len(MODEL) - 1)


def test_a_damaged_file_is_dropped_and_fetched_again(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 10**6)
    cache.put(SHA, MANIFEST, MODEL)
    path = cache.path(SHA)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    assert cache.get(SHA) is None
    assert not path.exists()


def test_a_file_under_another_name_is_never_served(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 10**6)
    cache.put(SHA, MANIFEST, MODEL)
    other = "e" * 64
    cache.path(other).parent.mkdir(parents=True, exist_ok=True)
    cache.path(SHA).rename(cache.path(other))
    assert cache.get(other) is None


def test_the_disk_cache_stays_within_its_budget_dropping_the_least_recent(tmp_path: Path) -> None:
    models = [os.urandom(1_000) for _ in range(8)]
    shas = [sha256_hex(m) for m in models]
    cache = DiskCache(tmp_path, 5_000)
    for index, (model, sha) in enumerate(zip(models, shas, strict=True)):
        manifest = orjson.dumps({"model": {"sha256": sha}})
        cache.put(sha, manifest, model)
        os.utime(cache.path(sha), (1_000 + index, 1_000 + index))
        if index == 3:
            assert cache.get(shas[0]) is not None  # used: now the most recent
            os.utime(cache.path(shas[0]), (1_500, 1_500))
    assert cache.used_bytes() <= 5_000
    kept = {sha for sha in shas if cache.path(sha).exists()}
    assert shas[0] in kept
    assert shas[-1] in kept
    assert shas[1] not in kept


# -- choosing a store -------------------------------------------------------------------------


def test_store_kafka_is_chosen_by_flag_environment_or_file(tmp_path: Path) -> None:
    by_flag = build_settings(flags={"store": "kafka"}, env={})
    by_env = build_settings(env={"FLEETSERVE_STORE": "kafka"})
    toml = tmp_path / "fleetserve.toml"
    toml.write_text('store = "kafka"\n')
    by_file = build_settings(env={}, config_file=toml)
    for settings in (by_flag, by_env, by_file):
        assert settings.store_kafka
        assert settings.store_dir == DEFAULT_STORE_DIR  # builds still write a folder
        assert settings.masked()["store"] == "kafka"
    folder = build_settings(flags={"store": "./kafka"}, env={})
    assert not folder.store_kafka
    assert folder.store_dir == Path("kafka")
    assert not build_settings(env={}).store_kafka


def test_the_disk_cache_defaults_to_the_state_dir_and_takes_a_size() -> None:
    settings = build_settings(env={"FLEETSERVE_DISK_CACHE_SIZE": "2GiB"})
    assert settings.serving.disk_cache_bytes == 2 * 2**30
    assert settings.serving.disk_cache_path == ".fleetserve/models"
    moved = serving_settings({"disk_cache": "/var/cache/fs", "state_dir": "/x"})
    assert moved.disk_cache_path == "/var/cache/fs"
    with pytest.raises(ConfigError):
        serving_settings({"model_fetch_timeout_ms": 5})
