"""Choose a configuration by cross-validation: none, coordinate, TPE, CMA-ES or evolution.

Every candidate is scored by :class:`~fleetserve.models.objective.Objective` on k-fold
cross-validation (:mod:`crossval`). Strategies:

- ``none``: the base configuration alone (the default build): its CV accuracy is still
  measured, because that is the number the report gives.
- ``coordinate``: from the base, each grid coordinate steps one value down and up; a better
  score moves there; passes repeat until a pass changes nothing or the budget is spent.
- ``tpe``, ``cmaes``, ``evolution``: optuna's TPE, CMA-ES and NSGA-II (a genetic algorithm)
  samplers over the same space, with a median pruner fed after every fold, so a bad
  configuration usually costs one fold, not k.

With ``select_width`` (``--width``, only without a strategy, see :mod:`width`), the base is
followed by a walk over table widths, each with the rows the cap then allows.

The search runs until the budget is spent, the trial cap is hit, or (coordinate) no
neighbour improves; the result says which. Warm starts (the best parameters of similar
bots, see ``builder/warm.py``) are tried first.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetserve.errors import ConfigError
from fleetserve.models import width as width_policy
from fleetserve.models.config import ModelConfig, rows_under_cap
from fleetserve.models.crossval import CvResult, FoldReport, cross_validate
from fleetserve.models.data import BotData
from fleetserve.models.distill import Distillation
from fleetserve.models.folds import Fold
from fleetserve.models.latency import weights_latency_us
from fleetserve.models.objective import Objective
from fleetserve.models.sizing import fit_to_cap
from fleetserve.models.space import (
    GRID,
    buckets_for,
    coordinate_neighbours,
    fill_for,
    suggest,
)

logger = logging.getLogger(__name__)

Strategy = Literal["none", "coordinate", "tpe", "cmaes", "evolution"]
STRATEGIES: tuple[Strategy, ...] = ("none", "coordinate", "tpe", "cmaes", "evolution")
MAX_TRIALS = 500


@dataclass(frozen=True)
class SearchOptions:
    strategy: Strategy = "none"
    budget_s: float = 0.0
    objective: Objective = field(default_factory=Objective)
    warm_start: tuple[Mapping[str, Any], ...] = ()
    max_trials: int = MAX_TRIALS
    select_width: bool = False  # walk table widths after the base (models/width.py)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown search strategy {self.strategy!r}; use one of {STRATEGIES}")


@dataclass(frozen=True)
class Candidate:
    config: ModelConfig
    cv: CvResult
    model_kb: float
    latency_us: float
    score: float

    def record(self) -> dict[str, Any]:
        return {
            "params": self.config.to_params(),
            "cv_accuracy": round(self.cv.accuracy, 3),
            "folds_run": len(self.cv.fold_accuracies),
            "model_kb": round(self.model_kb, 1),
            "latency_us": round(self.latency_us, 2),
            "score": round(self.score, 3),
            "seconds": round(self.cv.seconds, 3),
        }


@dataclass(frozen=True)
class SearchResult:
    best: Candidate
    trials: list[dict[str, Any]]
    stop_reason: str
    seconds: float
    strategy: Strategy

    def record(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "trials": len(self.trials),
            "pruned": sum(1 for t in self.trials if t.get("pruned")),
            "seconds": round(self.seconds, 3),
            "stop_reason": self.stop_reason,
            "best_params": self.best.config.to_params(),
            "best_score": round(self.best.score, 3),
        }


@dataclass
class _Evaluator:
    data: BotData
    folds: Sequence[Fold]
    seed: int
    options: SearchOptions
    distillation: Distillation | None
    started: float = field(default_factory=time.perf_counter)
    trials: list[dict[str, Any]] = field(default_factory=list)
    best: Candidate | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def evaluate(self, config: ModelConfig, report: FoldReport | None = None) -> Candidate:
        config = config.resolved(len(self.data.texts), self.data.n_classes)
        cv = cross_validate(
            self.data, config, self.folds, self.seed, distillation=self.distillation, report=report
        )
        kb = config.model_kb(self.data.n_classes, self.data.label_bytes)
        latency = 0.0
        # Without a strategy (width selection included) the same inputs give the same bytes:
        # wall-clock latency, which moves with the machine's load, would make the choice,
        # and so the file, differ from run to run.
        if self.options.strategy != "none":
            latency = weights_latency_us(cv.sample_weights, config.featurizer, self.data.texts)
        score = self.options.objective.score(cv.accuracy, kb, latency)
        candidate = Candidate(config, cv, kb, latency, score)
        self.trials.append({**candidate.record(), "pruned": not cv.complete})
        if cv.complete and (self.best is None or score > self.best.score):
            self.best = candidate
        logger.debug("trial %s", self.trials[-1])
        return candidate


def search(
    data: BotData,
    base: ModelConfig,
    folds: Sequence[Fold],
    seed: int,
    options: SearchOptions,
    distillation: Distillation | None = None,
) -> SearchResult:
    """The best configuration found, every trial, and why the search stopped."""
    run = _Evaluator(data, folds, seed, options, distillation)
    run.evaluate(base)
    for params in options.warm_start:
        warm = _with(base, params)
        if warm.model_kb(data.n_classes, data.label_bytes) > base.max_model_kb:
            warm = fit_to_cap(warm, data.n_classes, data)  # more intents: fewer buckets
        run.evaluate(warm)
    reason = "strategy none: the base configuration only"
    if options.select_width:
        reason = _width(run, base)
    if options.strategy == "coordinate":
        reason = _coordinate(run, base.max_model_kb)
    elif options.strategy != "none":
        reason = _optuna(run, base)
    assert run.best is not None
    result = SearchResult(run.best, run.trials, reason, run.elapsed(), options.strategy)
    log = logger.info if options.strategy != "none" or options.select_width else logger.debug
    log(
        "search %s: %d trials in %.1fs (%s), best cv %.2f",
        options.strategy,
        len(run.trials),
        result.seconds,
        reason,
        run.best.cv.accuracy,
    )
    return result


def _with(base: ModelConfig, params: Mapping[str, Any]) -> ModelConfig:
    """``base`` with another bot's parameters, but this bot's cap and table format."""
    kept = {k: v for k, v in params.items() if k not in ("max_model_kb", "seed", "quantization")}
    return base.with_params(kept)


def _width(run: _Evaluator, base: ModelConfig) -> str:
    """Step the width up while the score improves; down if the first step up did not."""
    assert run.best is not None
    tried = [base.training.dim]
    for up in (True, False):
        width = base.training.dim
        for _ in range(width_policy.MAX_STEPS):
            stepped = width_policy.next_width(width, up)
            if stepped is None:
                break
            width = stepped
            candidate = fit_to_cap(base.with_params({"dim": width}), run.data.n_classes, run.data)
            if candidate.training.dim != width:  # the cap cannot hold this width
                break
            before = run.best
            run.evaluate(candidate)
            tried.append(width)
            if run.best is before:
                break
        if run.best.config.training.dim > base.training.dim:
            break  # wider won: narrower is not worth a try
    chosen = run.best.config.training.dim
    return f"width selection: tried {sorted(tried)}, chose {chosen}"


def _out_of_budget(run: _Evaluator) -> str | None:
    if run.elapsed() >= run.options.budget_s:
        return f"budget spent ({run.options.budget_s:g} s)"
    if len(run.trials) >= run.options.max_trials:
        return f"trial cap reached ({run.options.max_trials})"
    return None


def _coordinate(run: _Evaluator, max_kb: float) -> str:
    assert run.best is not None
    tried: set[ModelConfig] = {run.best.config}
    moved = True
    while moved:
        moved = False
        for coordinate in GRID:
            for candidate in coordinate_neighbours(run.best.config, coordinate):
                resolved = candidate.resolved(len(run.data.texts), run.data.n_classes)
                kb = resolved.model_kb(run.data.n_classes, run.data.label_bytes)
                if resolved in tried or kb > max_kb:
                    continue
                stop = _out_of_budget(run)
                if stop:
                    return stop
                tried.add(resolved)
                before = run.best
                run.evaluate(candidate)
                moved = moved or run.best is not before
    return "converged: no neighbour of the best configuration scores higher"


def _optuna(run: _Evaluator, base: ModelConfig) -> str:
    import optuna  # noqa: PLC0415 - only searches pay for importing it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=_sampler(run.options.strategy, run.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
    )
    for trial in list(run.trials):  # the base and warm starts seed the sampler's model
        dim = trial["params"]["dim"]
        _tell(study, trial, _max_buckets(run.data, base, dim))
    study.optimize(
        _objective(run, base),
        timeout=max(0.0, run.options.budget_s - run.elapsed()),
        n_trials=max(0, run.options.max_trials - len(run.trials)),
        catch=(ConfigError,),
    )
    return _out_of_budget(run) or "optuna stopped"


def _sampler(strategy: Strategy, seed: int) -> Any:
    import optuna  # noqa: PLC0415

    if strategy == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True)
    if strategy == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)


def _max_buckets(data: BotData, base: ModelConfig, dim: int) -> int:
    return rows_under_cap(
        base.max_model_kb, data.n_classes, dim, base.quantization, data.label_bytes
    )


def _tell(study: Any, trial: Mapping[str, Any], allowed: int) -> None:
    import optuna  # noqa: PLC0415

    params = dict(trial["params"])
    params["table_fill"] = fill_for(params["buckets"], allowed)
    distributions = {k: v for k, v in _distributions().items() if k in params}
    values = {k: params[k] for k in distributions}
    try:
        study.add_trial(
            optuna.trial.create_trial(
                params=values, distributions=distributions, value=trial["score"]
            )
        )
    except ValueError:  # a warm start outside the space: it still competes as a candidate
        logger.debug("warm start %s is outside the search space", values)


def _distributions() -> dict[str, Any]:
    from fleetserve.models.space import distributions  # noqa: PLC0415

    return distributions()


def _objective(run: _Evaluator, base: ModelConfig) -> Callable[[Any], float]:
    import optuna  # noqa: PLC0415

    def objective(trial: Any) -> float:
        params = suggest(trial)
        fill = params.pop("table_fill")
        allowed = _max_buckets(run.data, base, params["dim"])
        if allowed < 256:
            raise optuna.TrialPruned  # this width leaves no room for a table under the cap
        config = base.with_params({**params, "buckets": buckets_for(fill, allowed)})

        def report(fold: int, accuracy: float) -> bool:
            trial.report(accuracy, fold)
            return bool(trial.should_prune())

        candidate = run.evaluate(config, report)
        if not candidate.cv.complete:
            raise optuna.TrialPruned
        return candidate.score if math.isfinite(candidate.score) else -1e9

    return objective
