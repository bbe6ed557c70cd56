"""What a build depends on besides the bot's own data."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from fleetserve.bots.assemble import DEFAULT_CONFLICT_POLICY, ConflictPolicy
from fleetserve.core.facts import VERSION
from fleetserve.models.calibrate import CalibrationOptions
from fleetserve.models.config import DEFAULT_MAX_MODEL_KB, DEFAULT_QUANTIZATION, QuantizationMode
from fleetserve.models.distill import DistillMode
from fleetserve.models.objective import DEFAULT_LATENCY_WEIGHT, DEFAULT_SIZE_WEIGHT, Objective
from fleetserve.models.pipeline import BuildOptions
from fleetserve.models.search import SearchOptions, Strategy
from fleetserve.models.width import WidthMode

# Bump when the model family or the build steps change meaning, so resumed builds redo bots.
# 2: cross-validated selection, refit on every utterance, size-fitted tables, conflict policy.
# 3: the training kernel's dropout draws changed (models differ for the same seed).
# 4: int4 tables for large bots by default, sized to the cap at their own bytes per row.
# 5: quantized graphs ship optimized by onnxruntime (models/optimize.py) and load without it.
# 6: the graph pools with a batched MatMul instead of Mul and ReduceSum (models/graph.py).
# 7: the gate judges int4 on 5,000 copies, small bots on several copies of each utterance,
#    and fails a model only on a loss beyond chance; a fallback over the cap is refit to it.
BUILD_RECIPE = 7


@dataclass(frozen=True)
class BuildConfig:
    search_budget_s: float = 0.0
    tolerance_points: float = 0.5
    seed: int = 0
    quantization: QuantizationMode = DEFAULT_QUANTIZATION
    search_strategy: Strategy = "none"
    max_model_kb: float = DEFAULT_MAX_MODEL_KB
    distill: DistillMode = "auto"
    width: WidthMode = "off"
    fallback_quantile: float | None = None
    target_oos_recall: float | None = None
    conflicts: ConflictPolicy = DEFAULT_CONFLICT_POLICY
    size_weight: float = DEFAULT_SIZE_WEIGHT
    latency_weight: float = DEFAULT_LATENCY_WEIGHT
    keep_fp32: bool = False
    # Share of the budget a bot gets when a similar bot's search already warm-starts it.
    warm_budget_fraction: float = 0.25
    base_params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def searching(self) -> bool:
        return self.search_strategy != "none" and self.search_budget_s > 0

    def fingerprint(self) -> str:
        """Changes whenever a rebuild could produce a different model."""
        payload = {"config": asdict(self), "recipe": BUILD_RECIPE, "fleetserve": VERSION}
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def model_options(
        self, warm_start: tuple[Mapping[str, Any], ...] = (), budget_s: float | None = None
    ) -> BuildOptions:
        return BuildOptions(
            search=SearchOptions(
                strategy=self.search_strategy if self.searching else "none",
                budget_s=self.search_budget_s if budget_s is None else budget_s,
                objective=Objective(self.size_weight, self.latency_weight),
                warm_start=warm_start,
            ),
            max_model_kb=self.max_model_kb,
            base_params=dict(self.base_params) or None,
            distill=self.distill,
            width=self.width,
            calibration=CalibrationOptions(self.fallback_quantile, self.target_oos_recall),
            quantization=self.quantization,
            tolerance_points=self.tolerance_points,
            keep_fp32=self.keep_fp32,
            seed=self.seed,
        )


def build_key(bot_content_hash: str, config: BuildConfig) -> str:
    """Same bot inputs and same config: same key, so the build can be skipped."""
    return hashlib.sha256(f"{bot_content_hash}:{config.fingerprint()}".encode()).hexdigest()[:32]
