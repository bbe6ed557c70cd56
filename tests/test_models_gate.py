"""The quantization gate decides on evidence: int4, which disagrees with fp32 more often, is
judged on more copies than int8, a small bot on several copies of each utterance, and a
loss fails a model only when it exceeds the tolerance beyond chance."""

from __future__ import annotations

from typing import Any

import numpy as np

from fleetserve.models.data import BotData
from fleetserve.models.featurize import FeaturizerSpec, featurize
from fleetserve.models.gate import (
    GATE_SAMPLE,
    MAX_COPIES_PER_UTTERANCE,
    Quantization,
    copies_per_utterance,
    decide,
    gate_published,
)
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
    assert judged["int8"].utterances == judged["int8"].copies == GATE_SAMPLE["int8"]
    assert judged["int4"].utterances == len(data.texts)
    assert judged["int4"].copies >= GATE_SAMPLE["int4"]
    assert all(result.passed for result in judged.values())


def test_a_small_bot_is_judged_on_several_copies_of_each_utterance() -> None:
    assert copies_per_utterance(152, 600) == 4
    assert copies_per_utterance(900, 600) == 1
    assert copies_per_utterance(3, 600) == MAX_COPIES_PER_UTTERANCE
    data = bot(per_intent=20)
    weights = train(
        featurize(SPEC, data.texts), data.labels, 3, SPEC.buckets, TrainParams(dim=8), seed=0
    )
    session = new_session(quantize_int8(export_onnx(weights, {})))
    judged = gate_published(session, weights, data, SPEC, 0.5, 0, "int8")
    assert judged.utterances == 60
    assert judged.copies == 60 * MAX_COPIES_PER_UTTERANCE


def scored(n: int, lost: int, gained: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two models' one-hot scores on ``n`` copies: fp32 right on all but
    ``gained``, the quantized model wrong on ``lost`` of fp32's and right on the rest."""
    labels = np.zeros(n, np.int64)
    fp32 = np.zeros((n, 2), np.float32)
    fp32[:, 0] = 1.0
    quantized = fp32.copy()
    quantized[:lost] = [0.0, 1.0]
    fp32[lost : lost + gained] = [0.0, 1.0]
    return labels, fp32, quantized


def judge(n: int, lost: int, gained: int, tolerance: float = 0.5) -> tuple[bool, str]:
    labels, fp32, quantized = scored(n, lost, gained)
    result = decide(
        labels, fp32, quantized, quantized="int8", tolerance_points=tolerance, split="copies"
    )
    assert (result.lost, result.gained, result.copies) == (lost, gained, n)
    return result.passed, result.reason


def test_a_copy_lost_on_a_small_sample_is_not_a_verdict_but_a_real_loss_is() -> None:
    # The case seen in a fleet: one copy of 152 lost, 0.66 points, over the 0.5 tolerance.
    passed, reason = judge(152, lost=1, gained=0)
    assert passed
    assert "within chance of the 0.5-point tolerance" in reason
    passed, reason = judge(152, lost=8, gained=0)
    assert not passed
    assert "outside the 0.5-point tolerance" in reason


def test_on_a_large_sample_the_tolerance_decides() -> None:
    assert judge(5_000, lost=20, gained=0) == (
        True,
        "int8 99.60% vs fp32 100.00% on copies (5000 copies, 20 lost, 0 gained): "
        "within the 0.5-point tolerance",
    )
    assert not judge(5_000, lost=60, gained=10)[0]  # 1.0 point lost, 3 standard errors out
    assert judge(5_000, lost=60, gained=40)[0]  # the models differ, neither is worse


def test_an_unreachable_tolerance_fails_even_identical_models() -> None:
    assert not judge(600, lost=0, gained=0, tolerance=-100.0)[0]
    assert judge(600, lost=0, gained=0, tolerance=0.0)[0]
