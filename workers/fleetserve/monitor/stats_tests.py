"""The guard's statistical tests: one-sided, normal approximations, pure functions.

Rates (fallbacks, dead letters) use the two-proportion z-test with a pooled variance;
means (confidence, model run time) use Welch's test with the normal approximation,
which is sound at the guard's minimum sample (hundreds of queries per side).
"""

from __future__ import annotations

import math


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def proportion_increase_p(new_hits: int, new_n: int, old_hits: int, old_n: int) -> float | None:
    """One-sided p-value that the new rate is higher than the old; None without data."""
    if new_n == 0 or old_n == 0:
        return None
    pooled = (new_hits + old_hits) / (new_n + old_n)
    variance = pooled * (1 - pooled) * (1 / new_n + 1 / old_n)
    difference = new_hits / new_n - old_hits / old_n
    if variance == 0:
        return 0.0 if difference > 0 else 1.0
    return normal_sf(difference / math.sqrt(variance))


def mean_and_variance(total: float, total_sq: float, n: int) -> tuple[float, float]:
    """Sample mean and (unbiased) variance from a sum and a sum of squares."""
    mean = total / n
    if n < 2:
        return mean, 0.0
    return mean, max(0.0, (total_sq - n * mean * mean) / (n - 1))


def welch_increase_p(new: tuple[float, float, int], old: tuple[float, float, int]) -> float | None:
    """One-sided p-value that the new mean is higher; each side is (sum, sum_sq, n)."""
    if new[2] < 2 or old[2] < 2:
        return None
    new_mean, new_var = mean_and_variance(*new)
    old_mean, old_var = mean_and_variance(*old)
    error = math.sqrt(new_var / new[2] + old_var / old[2])
    if error == 0:
        return 0.0 if new_mean > old_mean else 1.0
    return normal_sf((new_mean - old_mean) / error)
