"""A cache miss: snapshot -> integrity checks -> onnxruntime session, or a QueryFailed.

Order matters for cost and for the message: the manifest is tiny and says which sha256
the store holds, so a deployment that names other bytes is refused before the model file
is read. The store hashes the model file against that manifest (``read_model``); the
guard refuses non-ONNX bytes and foreign operator domains before onnxruntime parses
anything; then, inside the footprint measurement, the session is built, its metadata read
from the live session (``get_modelmeta``, about 15 us, no second protobuf parse) and one
query run, which proves the model runs and that its output width matches its labels.
Measured miss (warm page cache, ``bench/components/cache_bench.py``, recipe-5 snapshots):
p50 1.87 ms, p99 2.50 ms, of which about 0.75 ms is onnxruntime building the session.

Reason codes (``phase="load"``):

* ``model_missing``: the store has no such snapshot, or its model file is gone; on the
  models topic: nothing (or a tombstone, or another key) at the deployment's location,
  or no index entry for a deployment that names no location.
* ``model_corrupt``: a sha256 differs anywhere (deployment vs manifest, manifest vs bytes,
  deployment vs the models topic's headers), a chunked snapshot is truncated,
  the manifest is unreadable, the bytes are not ONNX at all, or the model's own metadata
  (labels, threshold, featurizer) is unreadable. A file that is not ONNX but matches its
  manifest is corrupt, not "refused": the snapshot is not what a builder publishes, and
  errors.ArtifactCorrupt already means "not a model fleetserve can run".
* ``model_load_failed``: a well-formed ONNX model that fleetserve refuses (a non-standard
  operator domain, external data, over the size cap) or that onnxruntime refuses, and any
  other failure.

A store that reads snapshots whole (:class:`SnapshotReader`: the directory store, the
models topic) is asked once, with the deployment's sha256 and location, and refuses a
manifest that names other bytes before it reads the model file. An ``OSError`` or a
``RetriableError`` from any store (a fetch that timed out) is transient: the query goes to
the retry tier.

The size cap (``--max-model-size``) is checked three times before a session exists: the
manifest's declared size (nothing is read), the bytes (never read past the cap), and the
tensors the model declares (shape times element size, what a session would allocate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from fleetserve.cache.footprint import FootprintMeter, process_meter
from fleetserve.cache.model import LoadedModel
from fleetserve.cache.onnx_guard import NotOnnx, RefusedModel, check_model_bytes
from fleetserve.core.route import Route
from fleetserve.deadletters import reasons
from fleetserve.errors import (
    ArtifactError,
    ArtifactMissing,
    ArtifactTooLarge,
    QueryFailed,
    RetriableError,
)
from fleetserve.models.runtime import (
    InferenceSession,
    ModelMetadata,
    new_session,
    predict_padded,
    read_model_metadata,
)
from fleetserve.store.base import ArtifactStore, SnapshotReader, SnapshotRequest

T = TypeVar("T")
QUANTIZATIONS = frozenset({"int4", "int8", "fp32"})


def load_failure(route: Route, reason: str, detail: str) -> QueryFailed:
    """A load failure whose message names the bot and the version."""
    return QueryFailed(
        reason, f"{route.bot_id} version {route.model_version}: {detail}", phase=reasons.PHASE_LOAD
    )


def check_manifest(route: Route, manifest: Mapping[str, Any], max_bytes: int | None = None) -> str:
    """The snapshot's quantization, once its manifest matches what the route deployed."""
    model = manifest.get("model")
    if not isinstance(model, Mapping):
        raise load_failure(route, reasons.MODEL_CORRUPT, "manifest has no 'model' section")
    size = model.get("size_bytes")
    if max_bytes is not None and isinstance(size, int) and size > max_bytes:
        detail = f"the snapshot is {size} bytes, {_over_cap(max_bytes)}"
        raise load_failure(route, reasons.MODEL_LOAD_FAILED, detail)
    stored = model.get("sha256")
    if stored != route.sha256:
        raise load_failure(
            route,
            reasons.MODEL_CORRUPT,
            f"the store's manifest has sha256 {stored}, the deployment says {route.sha256}",
        )
    quantization = model.get("quantization")
    if quantization not in QUANTIZATIONS:
        raise load_failure(
            route,
            reasons.MODEL_CORRUPT,
            f"manifest quantization {quantization!r} is not one of {sorted(QUANTIZATIONS)}",
        )
    return str(quantization)


def drop_model_bytes(session: InferenceSession, data: bytes) -> int:
    """Let go of onnxruntime's Python-side copy of the model; the bytes it still keeps.

    ``onnxruntime.InferenceSession(bytes)`` keeps the bytes object for the session's life
    (its own source says "this is bad as we're holding the memory indefinitely"); it only
    needs them to rebuild the session for a fallback execution provider, and fleetserve
    runs the CPU provider alone. Measured: 400 KiB of RSS per resident int8 session with the
    reference, 266 KiB without. If a future onnxruntime keeps the bytes elsewhere, they are
    counted instead of hidden. (The right home for this is ``models.runtime.new_session``.)
    """
    if getattr(session, "_model_bytes", None) is data:
        try:
            session._model_bytes = None
        except AttributeError:
            return len(data)
    return 0


class SnapshotLoader:
    """``Route -> LoadedModel`` from an artifact store; raises only QueryFailed.

    Thread-safe: it keeps no state of its own beyond the (shared, locked) footprint meter,
    so the cache may run several loads at once.
    """

    def __init__(
        self,
        store: ArtifactStore,
        *,
        max_model_bytes: int | None = None,
        meter: FootprintMeter | None = None,
    ) -> None:
        self._store = store
        # Checked once: isinstance against a runtime protocol costs about 20 us a call.
        self._reader = store if isinstance(store, SnapshotReader) else None
        self._max_bytes = max_model_bytes
        self._meter = meter

    def __call__(self, route: Route) -> LoadedModel:
        started = time.perf_counter()
        quantization, data = self._snapshot(route)
        check_bytes(route, data, self._max_bytes)
        meter = self._meter if self._meter is not None else process_meter()
        (session, metadata), footprint = meter.measure(len(data), lambda: _ready(route, data))
        footprint_bytes = footprint.bytes + drop_model_bytes(session, data)
        return LoadedModel(
            route=route,
            session=session,
            metadata=metadata,
            quantization=quantization,
            footprint_bytes=footprint_bytes,
            load_seconds=time.perf_counter() - started,
        )

    def _snapshot(self, route: Route) -> tuple[str, bytes]:
        """The quantization and the model bytes, both checked against the deployment."""
        bot, version, store, reader = route.bot_id, route.model_version, self._store, self._reader
        if reader is not None:  # one read: the directory, the models topic, its disk cache
            request = SnapshotRequest(bot, version, route.sha256, route.location, self._max_bytes)
            snapshot = self._read(route, lambda: reader.read_snapshot(request))
            return check_manifest(route, snapshot.manifest, self._max_bytes), snapshot.model
        manifest = self._read(route, lambda: store.read_manifest(bot, version))
        quantization = check_manifest(route, manifest, self._max_bytes)
        data = self._read(route, lambda: store.read_model(bot, version, self._max_bytes))
        return quantization, data

    def _read(self, route: Route, read: Callable[[], T]) -> T:
        try:
            return read()
        except ArtifactMissing as exc:
            raise load_failure(route, reasons.MODEL_MISSING, str(exc)) from exc
        except ArtifactTooLarge as exc:
            assert self._max_bytes is not None
            raise load_failure(
                route, reasons.MODEL_LOAD_FAILED, f"{exc}, {_over_cap(self._max_bytes)}"
            ) from exc
        except ArtifactError as exc:  # ArtifactCorrupt and the store's other integrity errors
            raise load_failure(route, reasons.MODEL_CORRUPT, str(exc)) from exc
        # The store briefly unreadable (an I/O error, an NFS hiccup, a fetch from the models
        # topic that timed out): the retry tier, never a dead letter at once.
        except (OSError, RetriableError) as exc:
            raise QueryFailed(
                reasons.MODEL_LOAD_FAILED,
                f"{route.bot_id} version {route.model_version}: reading the snapshot failed "
                f"(transient, will retry): {exc!r}",
                phase=reasons.PHASE_LOAD,
                retriable=True,
            ) from exc
        except Exception as exc:  # anything else unreadable: the batch goes on without it
            raise load_failure(
                route, reasons.MODEL_LOAD_FAILED, f"reading the snapshot failed: {exc!r}"
            ) from exc


def _over_cap(cap: int) -> str:
    return f"over the worker's cap of {cap} bytes (--max-model-size); not loaded"


def check_bytes(route: Route, data: bytes, max_bytes: int | None = None) -> None:
    try:
        check_model_bytes(data, max_bytes)
    except NotOnnx as exc:
        raise load_failure(route, reasons.MODEL_CORRUPT, str(exc)) from None
    except RefusedModel as exc:
        raise load_failure(route, reasons.MODEL_LOAD_FAILED, f"refused: {exc}") from None


def _ready(route: Route, data: bytes) -> tuple[InferenceSession, ModelMetadata]:
    """Session, metadata and one run: what a resident entry holds once it has answered.

    The first run allocates per-session state that stays (about 20 KiB measured), so it
    happens here, inside the footprint measurement, rather than on a query's clock; it also
    proves the model runs and that its output matches its labels. It runs one padded slot
    (bucket 0, weight 0), which every table has: featurizing a text for it cost 300 us of a
    1.5 ms load, and the featurizer spec was already validated with the metadata.
    """
    session = _session(route, data)
    metadata = _metadata(route, session)
    _first_run(route, session, metadata)
    return session, metadata


def _session(route: Route, data: bytes) -> InferenceSession:
    try:
        return new_session(data)
    except Exception as exc:  # onnxruntime's pybind errors share no useful base class
        raise load_failure(
            route, reasons.MODEL_LOAD_FAILED, f"onnxruntime refused the model: {_first_line(exc)}"
        ) from exc


def _metadata(route: Route, session: InferenceSession) -> ModelMetadata:
    try:
        return read_model_metadata(session)
    except Exception as exc:  # ArtifactError, ConfigError from the spec, anything malformed
        raise load_failure(
            route, reasons.MODEL_CORRUPT, f"unreadable model metadata: {exc}"
        ) from exc


def _first_run(route: Route, session: InferenceSession, metadata: ModelMetadata) -> None:
    try:
        probs = predict_padded(session, *_warm_up_slot())
    except Exception as exc:
        raise load_failure(
            route, reasons.MODEL_LOAD_FAILED, f"a first run failed: {_first_line(exc)}"
        ) from exc
    if probs.shape != (1, len(metadata.labels)):
        raise load_failure(
            route,
            reasons.MODEL_CORRUPT,
            f"the model scores {probs.shape[-1]} classes, its metadata names "
            f"{len(metadata.labels)} labels",
        )


def _warm_up_slot() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    return np.zeros((1, 1), np.int64), np.zeros((1, 1), np.float32)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)
