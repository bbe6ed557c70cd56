"""The int8 accuracy gate: publish the quantized model only if it keeps its accuracy."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fleetserve.models.evaluate import accuracy

Quantization = Literal["int8", "fp32"]


@dataclass(frozen=True)
class GateResult:
    tolerance_points: float
    passed: bool
    published: Quantization
    reason: str
    split: str  # what the two accuracies were measured on
    utterances: int
    accuracy_fp32: float
    accuracy_int8: float

    def record(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    labels: npt.NDArray[np.int64],
    probs_fp32: npt.NDArray[np.float32],
    probs_int8: npt.NDArray[np.float32],
    *,
    tolerance_points: float,
    split: str,
) -> GateResult:
    """int8 passes when ``accuracy_int8 >= accuracy_fp32 - tolerance_points``."""
    fp32 = accuracy(probs_fp32, labels)
    int8 = accuracy(probs_int8, labels)
    passed = int8 >= fp32 - tolerance_points
    verdict = "within" if passed else "outside"
    reason = (
        f"int8 {int8:.2f}% vs fp32 {fp32:.2f}% on {split} ({labels.size} utterances): "
        f"{verdict} the {tolerance_points:g}-point tolerance"
    )
    return GateResult(
        tolerance_points=tolerance_points,
        passed=passed,
        published="int8" if passed else "fp32",
        reason=reason,
        split=split,
        utterances=int(labels.size),
        accuracy_fp32=fp32,
        accuracy_int8=int8,
    )
