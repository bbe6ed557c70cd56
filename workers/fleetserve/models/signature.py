"""The ONNX graph's input and output names: what export writes and serving feeds.

Kept apart from :mod:`fleetserve.models.graph` so that serving needs neither ``onnx`` nor
the trainer to run a model (they cost a worker about 1 s of CPU at start-up).
"""

from __future__ import annotations

from typing import Final

INPUT_IDS: Final = "ids"
INPUT_WEIGHTS: Final = "weights"
OUTPUT_PROBS: Final = "probs"
