"""The quantization gate: publish a quantized model only if it keeps its accuracy.

The build tries its table format (int4 or int8, ``--quantization``), then int8, then
publishes fp32; each quantized model is compared with the fp32 weights on the same inputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fleetserve.models.data import BotData
from fleetserve.models.distill import Distillation, word_dropped
from fleetserve.models.evaluate import accuracy, run_all
from fleetserve.models.featurize import FeaturizerSpec, featurize
from fleetserve.models.runtime import InferenceSession
from fleetserve.models.train import ModelWeights, forward

# Every real utterance trained the published model, so the gate compares int8 and fp32 on
# inputs it has not seen verbatim: word-dropped copies of the utterances, whose margins are
# as thin as real unseen queries' are (on the training texts themselves both score ~100%).
GATE_COPIES = Distillation(copies=1, word_drop=0.3)
GATE_SPLIT = "word-dropped copies of the utterances"
GATE_SAMPLE = 600

Quantization = Literal["int4", "int8", "fp32"]


@dataclass(frozen=True)
class GateResult:
    tolerance_points: float
    passed: bool
    published: Quantization
    reason: str
    split: str  # what the two accuracies were measured on
    utterances: int
    accuracy_fp32: float
    quantized: Quantization  # the quantized model this gate measured
    accuracy_quantized: float

    def record(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    labels: npt.NDArray[np.int64],
    probs_fp32: npt.NDArray[np.float32],
    probs_quantized: npt.NDArray[np.float32],
    *,
    quantized: Quantization,
    tolerance_points: float,
    split: str,
) -> GateResult:
    """The quantized model passes when it scores at least fp32 less ``tolerance_points``."""
    fp32 = accuracy(probs_fp32, labels)
    score = accuracy(probs_quantized, labels)
    passed = score >= fp32 - tolerance_points
    verdict = "within" if passed else "outside"
    reason = (
        f"{quantized} {score:.2f}% vs fp32 {fp32:.2f}% on {split} ({labels.size} "
        f"utterances): {verdict} the {tolerance_points:g}-point tolerance"
    )
    return GateResult(
        tolerance_points=tolerance_points,
        passed=passed,
        published=quantized if passed else "fp32",
        reason=reason,
        split=split,
        utterances=int(labels.size),
        accuracy_fp32=fp32,
        quantized=quantized,
        accuracy_quantized=score,
    )


def gate_published(
    quantized: InferenceSession,
    fp32: ModelWeights,
    data: BotData,
    spec: FeaturizerSpec,
    tolerance_points: float,
    seed: int,
    quantization: Quantization,
) -> GateResult:
    """:func:`decide` on word-dropped copies of the bot's utterances.

    fp32 is scored by the numpy forward pass, which the exported fp32 graph matches to
    rounding (tests/test_models_train.py), at a fraction of onnxruntime's per-call cost.
    """
    rows = np.arange(len(data.texts))
    if rows.size > GATE_SAMPLE:  # 600 copies resolve a 0.17-point difference; more cost time
        rows = np.sort(np.random.default_rng(seed).choice(rows.size, GATE_SAMPLE, replace=False))
    copies = word_dropped([data.texts[i] for i in rows.tolist()], GATE_COPIES, seed)
    labels = np.concatenate([data.labels[rows]] * GATE_COPIES.copies)
    features = featurize(spec, copies)
    return decide(
        labels,
        forward(fp32, features),
        run_all(quantized, features, chunk=256),
        quantized=quantization,
        tolerance_points=tolerance_points,
        split=GATE_SPLIT,
    )
