"""What a search optimizes: cross-validated accuracy, less a price for size and latency.

``score = cv accuracy (points) - size_weight * KB - latency_weight * us per query``.
The defaults price 100 KB at 0.5 point and 10 us of batch-1 latency at 0.1 point, so a
larger or slower configuration must earn its keep in accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SIZE_WEIGHT = 0.005  # points per KB of quantized file
DEFAULT_LATENCY_WEIGHT = 0.01  # points per microsecond of a batch-1 run


@dataclass(frozen=True)
class Objective:
    size_weight: float = DEFAULT_SIZE_WEIGHT
    latency_weight: float = DEFAULT_LATENCY_WEIGHT

    def score(self, accuracy: float, model_kb: float, latency_us: float) -> float:
        return accuracy - self.size_weight * model_kb - self.latency_weight * latency_us
