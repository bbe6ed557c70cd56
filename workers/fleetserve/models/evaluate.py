"""Accuracy and latency of a model, numpy or onnxruntime."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fleetserve.models.featurize import (
    Features,
    FeaturizerSpec,
    featurize_padded,
    select,
    to_padded,
)
from fleetserve.models.runtime import InferenceSession
from fleetserve.models.signature import INPUT_IDS, INPUT_WEIGHTS, OUTPUT_PROBS

F32 = npt.NDArray[np.float32]


def accuracy(probs: F32, labels: npt.NDArray[np.int64]) -> float:
    """Percent of rows whose arg-max is the label; 0.0 for no rows."""
    if labels.size == 0:
        return 0.0
    return 100.0 * float((probs.argmax(axis=1) == labels).mean())


def run_all(session: InferenceSession, features: Features, *, chunk: int = 64) -> F32:
    """Probabilities for many texts, in chunks of similar length.

    One [B, L] batch pads every text to the longest; a few long utterances would make the
    whole run several times the work, so texts are sorted by feature count first.
    """
    n_classes = int(session.get_outputs()[0].shape[1])
    probs = np.zeros((features.n_texts, n_classes), np.float32)
    order = np.argsort(np.diff(features.indptr), kind="stable")
    for start in range(0, order.size, chunk):
        rows = order[start : start + chunk]
        ids, weights = to_padded(select(features, rows))
        outputs = session.run([OUTPUT_PROBS], {INPUT_IDS: ids, INPUT_WEIGHTS: weights})
        probs[rows] = outputs[0]
    return probs


def latency_us(
    session: InferenceSession,
    spec: FeaturizerSpec,
    texts: Sequence[str],
    *,
    batch: int,
    repeats: int,
) -> float:
    """Median wall time of one ``session.run`` per query, featurization excluded."""
    chosen = [texts[i % len(texts)] for i in range(batch)]
    ids, weights = featurize_padded(spec, chosen)
    feeds = {INPUT_IDS: ids, INPUT_WEIGHTS: weights}
    session.run([OUTPUT_PROBS], feeds)  # first run allocates; not what a warm worker sees
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run([OUTPUT_PROBS], feeds)
        samples.append(time.perf_counter() - started)
    return 1e6 * statistics.median(samples) / batch
