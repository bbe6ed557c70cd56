"""The quantization gate's sample: int4, which disagrees with fp32 more often, is judged on
more copies than int8, so chance alone does not fail a sound int4 table."""

from __future__ import annotations

from typing import Any

import numpy as np

from fleetserve.models.data import BotData
from fleetserve.models.featurize import FeaturizerSpec, featurize
from fleetserve.models.gate import GATE_SAMPLE, Quantization, gate_published
from fleetserve.models.graph import export_onnx
from fleetserve.models.quantize import quantize_int4, quantize_int8
from fleetserve.models.runtime import new_session
from fleetserve.models.train import TrainParams, train

SPEC = FeaturizerSpec(buckets=512)
WORDS = {
    "weather": ["rain", "sunny", "forecast", "umbrella"],
    "music": ["song", "playlist", "guitar", "album"],
    "alarm": ["wake", "alarm", "snooze", "morning"],
}


def bot(per_intent: int) -> BotData:
    texts, labels = [], []
    for label, words in enumerate(WORDS.values()):
        for n in range(per_intent):
            texts.append(f"please {words[n % 4]} now number {n} {words[(n + 1) % 4]}")
            labels.append(label)
    return BotData(texts, np.array(labels, np.int64), tuple(WORDS))


def test_int4_is_judged_on_more_copies_than_int8() -> None:
    data = bot(per_intent=300)  # 900 utterances: more than int8's sample, fewer than int4's
    assert GATE_SAMPLE["int8"] < len(data.texts) < GATE_SAMPLE["int4"]
    weights = train(
        featurize(SPEC, data.texts), data.labels, 3, SPEC.buckets, TrainParams(dim=8), seed=0
    )
    sessions: dict[Quantization, Any] = {
        "int8": new_session(quantize_int8(export_onnx(weights, {}))),
        "int4": new_session(quantize_int4(weights, {})),
    }
    judged = {
        quantization: gate_published(session, weights, data, SPEC, 0.5, 0, quantization)
        for quantization, session in sessions.items()
    }
    assert judged["int8"].utterances == GATE_SAMPLE["int8"]
    assert judged["int4"].utterances == len(data.texts)
    assert all(result.passed for result in judged.values())
