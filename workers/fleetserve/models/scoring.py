"""Score a model's predictions on a labelled test set: what ``fleetserve eval`` reports. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

CONFUSED_PAIRS = 10


def score_predictions(
    labels: Sequence[str],
    probs: F32,
    truth: Sequence[str],
    oos_probs: F32,
    threshold: float,
) -> dict[str, Any]:
    """Accuracy, per-intent precision and recall, confused pairs and fallback rates.

    ``probs`` are the model's rows for the in-scope test utterances (``truth``), ``oos_probs``
    for the out-of-scope ones. A true intent the model does not know counts as an error.
    """
    predicted = [labels[i] for i in probs.argmax(axis=1)] if len(truth) else []
    confidence = probs.max(axis=1) if len(truth) else np.zeros(0, np.float32)
    correct = np.array([p == t for p, t in zip(predicted, truth, strict=True)], bool)
    accepted = confidence >= threshold
    oos_fallback = oos_probs.max(axis=1) < threshold if oos_probs.size else np.zeros(0, bool)
    return {
        "utterances": len(truth),
        "out_of_scope": int(oos_fallback.size),
        "accuracy": _percent(correct),
        "accuracy_at_threshold": _percent(correct & accepted),
        "fallback_threshold": threshold,
        "in_scope_fallback_rate": _percent(~accepted),
        "oos_recall": _percent(oos_fallback) if oos_fallback.size else None,
        "unknown_intents": sorted(set(truth) - set(labels)),
        "per_intent": _per_intent(sorted(set(labels) | set(truth)), predicted, truth),
        "confused_pairs": _confused(predicted, truth),
    }


def _percent(flags: npt.NDArray[np.bool_]) -> float | None:
    return 100.0 * float(flags.mean()) if flags.size else None


def _per_intent(
    intents: Sequence[str], predicted: Sequence[str], truth: Sequence[str]
) -> list[dict[str, Any]]:
    hits = Counter(t for p, t in zip(predicted, truth, strict=True) if p == t)
    said = Counter(predicted)
    support = Counter(truth)
    return [
        {
            "intent": intent,
            "support": support[intent],
            "precision": 100.0 * hits[intent] / said[intent] if said[intent] else None,
            "recall": 100.0 * hits[intent] / support[intent] if support[intent] else None,
        }
        for intent in intents
    ]


def _confused(predicted: Sequence[str], truth: Sequence[str]) -> list[dict[str, Any]]:
    pairs = Counter((t, p) for p, t in zip(predicted, truth, strict=True) if p != t)
    return [
        {"intent": t, "predicted": p, "count": n} for (t, p), n in pairs.most_common(CONFUSED_PAIRS)
    ]
