"""Fallback threshold calibration and the fallback metrics."""

from __future__ import annotations

import numpy as np
import pytest

from fleetserve.errors import ConfigError
from fleetserve.models.calibrate import CalibrationOptions, calibrate_threshold, fallback_metrics


def f32(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


def test_with_oos_the_threshold_separates_the_two_populations() -> None:
    in_conf = f32(0.9, 0.8, 0.95, 0.7, 0.85)
    correct = np.array([True, True, True, True, True])
    oos = f32(0.2, 0.3, 0.4, 0.35)
    calibration = calibrate_threshold(in_conf, correct, oos)
    assert calibration.source == "in_scope_and_oos"
    assert 0.4 < calibration.threshold < 0.7
    assert calibration.objective == pytest.approx(2.0)


def test_with_overlap_the_lowest_of_equally_good_thresholds_wins() -> None:
    in_conf = f32(0.9, 0.6, 0.5, 0.45)
    correct = np.array([True, True, True, False])
    oos = f32(0.55, 0.3, 0.2, 0.1)
    calibration = calibrate_threshold(in_conf, correct, oos)
    # Accepting from 0.45, 0.5 or 0.6 up all score 0.75 + 0.75 (or 0.5 + 1.0) = 1.5; the
    # lowest means the fewest fallbacks, and the threshold sits midway below it.
    assert calibration.objective == pytest.approx(1.5)
    assert calibration.threshold == pytest.approx((0.3 + 0.45) / 2)
    metrics = fallback_metrics(in_conf, correct, oos, calibration.threshold)
    assert metrics["fallback_recall"] == 75.0
    assert metrics["in_scope_accuracy_at_threshold"] == 75.0


def test_incorrect_in_scope_predictions_do_not_count_as_accepted() -> None:
    in_conf = f32(0.99, 0.98)
    correct = np.array([False, False])
    calibration = calibrate_threshold(in_conf, correct, f32(0.5))
    assert calibration.threshold > 0.5  # nothing in scope is worth accepting


def test_without_oos_a_low_quantile_of_in_scope_confidences() -> None:
    rng = np.random.default_rng(0)
    in_conf = rng.uniform(0.5, 1.0, 1000).astype(np.float32)
    correct = np.ones(1000, bool)
    calibration = calibrate_threshold(
        in_conf, correct, f32(), options=CalibrationOptions(quantile=0.1)
    )
    assert calibration.source == "in_scope_quantile"
    assert calibration.threshold == pytest.approx(0.55, abs=0.02)
    assert fallback_metrics(in_conf, correct, f32(), calibration.threshold)[
        "in_scope_fallback_rate"
    ] == pytest.approx(10.0, abs=0.2)


def test_without_any_evidence_nothing_falls_back() -> None:
    calibration = calibrate_threshold(f32(), np.zeros(0, bool), f32())
    assert (calibration.threshold, calibration.source) == (0.0, "none")


def test_fallback_metrics() -> None:
    metrics = fallback_metrics(
        f32(0.9, 0.2, 0.8), np.array([True, True, False]), f32(0.1, 0.6), threshold=0.5
    )
    assert metrics["fallback_recall"] == 50.0  # one of two oos rejected
    assert metrics["fallback_precision"] == 50.0  # of two fallbacks, one was oos
    assert metrics["in_scope_accuracy_at_threshold"] == pytest.approx(100 / 3)
    no_oos = fallback_metrics(f32(0.9, 0.2), np.array([True, True]), f32(), threshold=0.5)
    assert no_oos["fallback_precision"] is None
    assert no_oos["fallback_recall"] is None


def test_a_target_oos_recall_rejects_at_least_that_share() -> None:
    oos = f32(0.1, 0.2, 0.3, 0.4, 0.9)
    calibration = calibrate_threshold(
        f32(0.95), np.ones(1, bool), oos, options=CalibrationOptions(target_oos_recall=80.0)
    )
    assert calibration.source == "target_oos_recall"
    assert 0.4 < calibration.threshold < 0.41
    metrics = fallback_metrics(f32(0.95), np.ones(1, bool), oos, calibration.threshold)
    assert metrics["fallback_recall"] == 80.0


def test_calibration_options_refuse_nonsense() -> None:
    with pytest.raises(ConfigError):
        CalibrationOptions(quantile=0.1, target_oos_recall=90.0)
    with pytest.raises(ConfigError):
        CalibrationOptions(target_oos_recall=0.0)
