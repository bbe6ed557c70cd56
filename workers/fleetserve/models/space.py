"""The search space: a grid for coordinate search, distributions for optuna's samplers."""

from __future__ import annotations

from typing import Any

from fleetserve.models.config import ModelConfig

# Ordered by how much they moved cross-validated accuracy in bench/components/quality_bench.py runs.
GRID: dict[str, list[Any]] = {
    "char_ngrams": [(1, 3), (2, 4), (3, 5), (2, 5)],
    "dim": [16, 24, 32, 40, 48, 64, 96],
    "buckets": [1024, 2048, 3072, 4096, 6144, 8192, 12288, 16384],
    "epochs": [3, 5, 8, 12, 20, 30],
    "dropout": [0.0, 0.15, 0.3, 0.45],
    "label_smoothing": [0.0, 0.1, 0.2],
    "lr": [0.01, 0.02, 0.03, 0.05],
    "batch_size": [16, 32, 64, 128],
    "word_ngram_max": [1, 2],
    "pooling": ["mean", "sqrt"],
    "optimizer": ["rowwise", "adam"],
}


def coordinate_neighbours(config: ModelConfig, coordinate: str) -> list[ModelConfig]:
    """One grid step down and up from the current value (nearest grid values when off-grid)."""
    current = _get(config, coordinate)
    values = GRID[coordinate]
    if current in values:
        index = values.index(current)
        picks = [values[i] for i in (index - 1, index + 1) if 0 <= i < len(values)]
    else:
        picks = _around(values, current)
    return [_set(config, coordinate, value) for value in picks]


def _around(values: list[Any], current: Any) -> list[Any]:
    if not isinstance(current, int | float) or isinstance(current, bool):
        return [v for v in values if v != current][:2]
    below = [v for v in values if v < current]
    above = [v for v in values if v > current]
    return ([below[-1]] if below else []) + ([above[0]] if above else [])


def _get(config: ModelConfig, coordinate: str) -> Any:
    if coordinate == "char_ngrams":
        return (config.featurizer.char_ngram_min, config.featurizer.char_ngram_max)
    return config.to_params()[coordinate]


def _set(config: ModelConfig, coordinate: str, value: Any) -> ModelConfig:
    if coordinate == "char_ngrams":
        return config.with_params({"char_ngram_min": value[0], "char_ngram_max": value[1]})
    return config.with_params({coordinate: value})


def distributions() -> dict[str, Any]:
    """optuna distributions of the same space (numeric where CMA-ES can use it)."""
    from optuna.distributions import (  # noqa: PLC0415 - optuna only for searches
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    return {
        # The table's share of the rows the size cap allows at the sampled width: every
        # sample is a model that may be published (sampling buckets directly put most of
        # them over a small cap, where they could only be discarded).
        "table_fill": FloatDistribution(0.05, 1.0, log=True),
        "dim": IntDistribution(12, 96, log=True),
        "char_ngram_min": IntDistribution(1, 3),
        "char_ngram_max": IntDistribution(3, 5),
        "word_ngram_max": IntDistribution(1, 2),
        "epochs": IntDistribution(3, 40, log=True),
        "lr": FloatDistribution(0.005, 0.1, log=True),
        "batch_size": IntDistribution(8, 128, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "label_smoothing": FloatDistribution(0.0, 0.25),
        "pooling": CategoricalDistribution(["mean", "sqrt"]),
        "optimizer": CategoricalDistribution(["rowwise", "adam"]),
    }


def suggest(trial: Any) -> dict[str, Any]:
    """One point of the space from an optuna trial."""
    from optuna.distributions import FloatDistribution, IntDistribution  # noqa: PLC0415

    params: dict[str, Any] = {}
    for name, dist in distributions().items():
        if isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        else:
            params[name] = trial.suggest_categorical(name, dist.choices)
    params["char_ngram_max"] = max(params["char_ngram_max"], params["char_ngram_min"])
    return params


def buckets_for(fill: float, max_buckets: int) -> int:
    """Rows for a ``table_fill`` share of what the cap allows, in steps of 256 (min 256)."""
    return max(256, int(fill * max_buckets) // 256 * 256)


def fill_for(buckets: int, max_buckets: int) -> float:
    """The ``table_fill`` that gives ``buckets`` (for telling optuna about known trials)."""
    return float(min(1.0, max(0.05, buckets / max(max_buckets, 1))))
