"""The cache's miss path with real snapshots: checks, reason codes, the guard, footprints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fleetserve.cache.loader import SnapshotLoader
from fleetserve.cache.onnx_guard import NotOnnx, RefusedModel, check_model_bytes
from fleetserve.config.serving import ServingSettings
from fleetserve.core.facts import MAX_MODEL_KB_LIMIT
from fleetserve.core.route import Route
from fleetserve.errors import ConfigError, QueryFailed
from fleetserve.models.config import ModelConfig
from fleetserve.models.graph import with_metadata, without_metadata
from fleetserve.models.metadata import KEY_FORMAT, KEY_LABELS, metadata_props
from fleetserve.models.runtime import predict
from fleetserve.store.base import MODEL_FILE
from fleetserve.store.local import LocalDirectoryStore
from support.bots import BotFactory, BuiltBots


@pytest.fixture(scope="module")
def built(bot_factory: BotFactory) -> BuiltBots:
    return bot_factory(n=2, seed=3)


@pytest.fixture
def real_bytes(built: BuiltBots) -> bytes:
    bot = built.bot_ids[0]
    return built.store.read_model(bot, built.versions[bot])


def publish(store: LocalDirectoryStore, data: bytes, quantization: Any = "int8") -> Route:
    """A snapshot whose manifest matches ``data``, deployed as ``doctored``'s route."""
    ref = store.put_snapshot("doctored", data, {"model": {"quantization": quantization}})
    return Route("doctored", "real", ref.version, ref.sha256)


def failure(loader: SnapshotLoader, route: Route) -> QueryFailed:
    with pytest.raises(QueryFailed) as caught:
        loader(route)
    assert caught.value.phase == "load"
    assert route.bot_id in str(caught.value)
    assert route.model_version in str(caught.value)
    return caught.value


def edit(data: bytes, change: Callable[[onnx.ModelProto], None]) -> bytes:
    model = onnx.load_from_string(data)
    change(model)
    edited: bytes = model.SerializeToString()
    return edited


# -- the happy path ------------------------------------------------------------------------


def test_loads_a_ready_model_with_its_manifest_facts(built: BuiltBots) -> None:
    bot = built.bot_ids[0]
    route = built.route(bot)
    manifest = built.store.read_manifest(bot, route.model_version)

    model = SnapshotLoader(built.store)(route)

    assert model.route == route
    assert model.quantization == manifest["model"]["quantization"]
    assert model.quantization in ("int4", "int8", "fp32")
    assert model.metadata.labels == tuple(manifest["labels"])
    assert model.metadata.fallback_threshold == manifest["fallback_threshold"]
    # A small int8 model costs a few hundred KB resident (see cache/footprint.py).
    assert 50_000 < model.footprint_bytes < 4_000_000
    assert 0 < model.load_seconds < 5
    probs = predict(model.session, model.metadata.featurizer, ["hello there", "what is it"])
    assert probs.shape == (2, len(model.metadata.labels))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)


# -- reason codes --------------------------------------------------------------------------


def test_missing_version_is_model_missing(built: BuiltBots) -> None:
    bot = built.bot_ids[0]
    route = Route(bot, "real", "0123456789abcdef", "ab" * 32)
    assert failure(SnapshotLoader(built.store), route).reason == "model_missing"


def test_missing_model_file_is_model_missing(built: BuiltBots, tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    bot = built.bot_ids[0]
    route = publish(store, built.store.read_model(bot, built.versions[bot]))
    (store.snapshot_dir(route.bot_id, route.model_version) / MODEL_FILE).unlink()
    assert failure(SnapshotLoader(store), route).reason == "model_missing"


def test_deployment_sha256_differs_from_manifest_is_model_corrupt(built: BuiltBots) -> None:
    bot = built.bot_ids[0]
    honest = built.route(bot)
    route = Route(bot, "real", honest.model_version, "0" * 64)
    error = failure(SnapshotLoader(built.store), route)
    assert error.reason == "model_corrupt"
    assert honest.sha256 in str(error), "the message names both hashes"
    assert "0" * 64 in str(error)


def test_flipped_bytes_in_model_file_is_model_corrupt(real_bytes: bytes, tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)
    route = publish(store, real_bytes)
    path = store.snapshot_dir(route.bot_id, route.model_version) / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    error = failure(SnapshotLoader(store), route)
    assert error.reason == "model_corrupt"
    assert "sha256" in str(error)


def test_non_onnx_bytes_matching_their_manifest_are_model_corrupt(tmp_path: Path) -> None:
    # Decision: the bytes are what was published, but they are not a model at all, which
    # errors.ArtifactCorrupt already covers ("not a model fleetserve can run").
    store = LocalDirectoryStore(tmp_path)
    route = publish(store, b"PK\x03\x04 this is a zip file, not an ONNX model" * 50)
    error = failure(SnapshotLoader(store), route)
    assert error.reason == "model_corrupt"
    assert "not an ONNX model" in str(error)


def test_manifest_without_known_quantization_is_model_corrupt(
    real_bytes: bytes, tmp_path: Path
) -> None:
    route = publish(LocalDirectoryStore(tmp_path), real_bytes, quantization="int2")
    error = failure(SnapshotLoader(LocalDirectoryStore(tmp_path)), route)
    assert error.reason == "model_corrupt"
    assert "int2" in str(error)


def test_model_without_fleetserve_metadata_is_model_corrupt(
    real_bytes: bytes, tmp_path: Path
) -> None:
    route = publish(LocalDirectoryStore(tmp_path), without_metadata(real_bytes, {KEY_FORMAT}))
    error = failure(SnapshotLoader(LocalDirectoryStore(tmp_path)), route)
    assert error.reason == "model_corrupt"
    assert "metadata" in str(error)


def test_labels_that_do_not_match_the_output_are_model_corrupt(
    real_bytes: bytes, tmp_path: Path
) -> None:
    labels = json.loads(metadata_props(real_bytes)[KEY_LABELS])
    doctored = with_metadata(real_bytes, {KEY_LABELS: json.dumps([*labels, "one_too_many"])})
    route = publish(LocalDirectoryStore(tmp_path), doctored)
    error = failure(SnapshotLoader(LocalDirectoryStore(tmp_path)), route)
    assert error.reason == "model_corrupt"
    assert f"scores {len(labels)} classes" in str(error)


def test_onnxruntime_does_not_keep_the_model_bytes_alive(built: BuiltBots) -> None:
    # InferenceSession(bytes) holds the bytes for its life: a third of a session's memory.
    model = SnapshotLoader(built.store)(built.route(built.bot_ids[0]))
    assert getattr(model.session, "_model_bytes", None) is None


def test_foreign_operator_domain_is_refused_as_model_load_failed(
    real_bytes: bytes, tmp_path: Path
) -> None:
    def add_custom_op(model: onnx.ModelProto) -> None:
        model.opset_import.add(domain="com.example.custom", version=1)
        model.graph.node.append(
            helper.make_node("Exfiltrate", ["ids"], ["leak"], domain="com.example.custom")
        )

    route = publish(LocalDirectoryStore(tmp_path), edit(real_bytes, add_custom_op))
    error = failure(SnapshotLoader(LocalDirectoryStore(tmp_path)), route)
    assert error.reason == "model_load_failed"
    assert "com.example.custom" in str(error)
    assert "custom-op" in str(error)


def test_external_tensor_data_is_refused(real_bytes: bytes, tmp_path: Path) -> None:
    def point_outside(model: onnx.ModelProto) -> None:
        tensor = model.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="/etc/passwd")

    route = publish(LocalDirectoryStore(tmp_path), edit(real_bytes, point_outside))
    error = failure(SnapshotLoader(LocalDirectoryStore(tmp_path)), route)
    assert error.reason == "model_load_failed"
    assert "external data" in str(error)


def test_model_onnxruntime_cannot_run_is_model_load_failed(
    real_bytes: bytes, tmp_path: Path
) -> None:
    def unknown_op(model: onnx.ModelProto) -> None:
        model.graph.node.append(helper.make_node("NoSuchOperator", ["ids"], ["nothing"]))

    route = publish(LocalDirectoryStore(tmp_path), edit(real_bytes, unknown_op))
    error = failure(SnapshotLoader(LocalDirectoryStore(tmp_path)), route)
    assert error.reason == "model_load_failed"
    assert "onnxruntime refused" in str(error)


def test_an_unreadable_store_is_model_load_failed(built: BuiltBots) -> None:
    class BrokenStore(LocalDirectoryStore):
        def read_manifest(self, bot_id: str, version: str) -> dict[str, Any]:
            raise PermissionError(13, f"Permission denied: {bot_id}/{version}")

    route = built.route(built.bot_ids[0])
    error = failure(SnapshotLoader(BrokenStore(built.store_dir)), route)
    assert error.reason == "model_load_failed"
    assert "Permission denied" in str(error)


# -- the size cap --------------------------------------------------------------------------


class CountingStore(LocalDirectoryStore):
    """Counts model reads, to show an oversized snapshot is refused before being read."""

    model_reads = 0

    def read_model(self, bot_id: str, version: str, max_bytes: int | None = None) -> bytes:
        CountingStore.model_reads += 1
        return super().read_model(bot_id, version, max_bytes)


def test_a_snapshot_over_the_cap_is_refused_before_it_is_read(
    real_bytes: bytes, tmp_path: Path
) -> None:
    store = CountingStore(tmp_path)
    route = publish(store, real_bytes)
    cap = len(real_bytes) - 1
    error = failure(SnapshotLoader(store, max_model_bytes=cap), route)
    assert error.reason == "model_load_failed"
    assert f"is {len(real_bytes)} bytes, over the worker's cap of {cap} bytes" in str(error)
    assert CountingStore.model_reads == 0
    assert SnapshotLoader(store, max_model_bytes=len(real_bytes))(route).route == route


def test_a_manifest_that_understates_the_size_is_caught_by_the_read(
    real_bytes: bytes, tmp_path: Path
) -> None:
    store = LocalDirectoryStore(tmp_path)
    route = publish(store, real_bytes)
    manifest_path = store.snapshot_dir(route.bot_id, route.model_version) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"]["size_bytes"] = 10
    manifest_path.write_text(json.dumps(manifest))
    error = failure(SnapshotLoader(store, max_model_bytes=1000), route)
    assert error.reason == "model_load_failed"
    assert "over the worker's cap of 1000 bytes" in str(error)


def test_tensors_that_declare_more_than_the_cap_are_refused(
    real_bytes: bytes, tmp_path: Path
) -> None:
    """A small file whose tensors claim gigabytes: what a session would try to allocate."""

    def claim_a_huge_table(model: onnx.ModelProto) -> None:
        huge = TensorProto(name="huge", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 10])
        model.graph.initializer.append(huge)

    doctored = edit(real_bytes, claim_a_huge_table)
    route = publish(LocalDirectoryStore(tmp_path), doctored)
    error = failure(SnapshotLoader(LocalDirectoryStore(tmp_path), max_model_bytes=64 << 20), route)
    assert error.reason == "model_load_failed"
    assert "its tensors declare 42" in str(error)  # 4 GiB plus the real tables
    assert "over the worker's cap of 67108864" in str(error)
    with pytest.raises(RefusedModel):
        check_model_bytes(doctored, max_tensor_bytes=64 << 20)


def test_the_default_cap_admits_the_largest_model_the_factory_publishes(built: BuiltBots) -> None:
    largest = ModelConfig.from_params({"max_model_kb": MAX_MODEL_KB_LIMIT})
    # At most two weights a byte (int4); the gate may publish them as fp32 instead.
    fp32_bytes = 4 * 2 * largest.max_model_kb * 1024
    assert ServingSettings().max_model_bytes >= fp32_bytes
    with pytest.raises(ConfigError):
        ModelConfig.from_params({"max_model_kb": MAX_MODEL_KB_LIMIT + 1})
    bot = built.bot_ids[1]
    loader = SnapshotLoader(built.store, max_model_bytes=ServingSettings().max_model_bytes)
    assert loader(built.route(bot)).route.bot_id == bot


# -- the guard -----------------------------------------------------------------------------


def test_guard_accepts_every_real_snapshot(built: BuiltBots) -> None:
    for bot in built.bot_ids:
        check_model_bytes(built.store.read_model(bot, built.versions[bot]))


def test_guard_sees_domains_inside_subgraphs(real_bytes: bytes) -> None:
    def hide_in_if(model: onnx.ModelProto) -> None:
        inner = helper.make_graph(
            [helper.make_node("Steal", [], ["y"], domain="evil")],
            "then",
            [],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        )
        model.graph.node.append(
            helper.make_node("If", ["cond"], ["out"], then_branch=inner, else_branch=inner)
        )

    with pytest.raises(RefusedModel, match="'evil'"):
        check_model_bytes(edit(real_bytes, hide_in_if))


@pytest.mark.parametrize("data", [b"", b"\x00" * 64, b"hello world"])
def test_guard_calls_non_models_not_onnx(data: bytes) -> None:
    with pytest.raises(NotOnnx):
        check_model_bytes(data)


# -- footprints ----------------------------------------------------------------------------
