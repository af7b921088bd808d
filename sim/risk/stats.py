"""Confidence intervals for Monte Carlo results.

- A mean over runs: Student-t interval, mean +- t_{(1+c)/2, n-1} * s / sqrt(n) (runs are independent and
  identically distributed; the t interval is exact for normal data and close for n >= 30 otherwise).
- A probability (failover risk = breaches / runs): Wilson score interval, which stays inside [0, 1] and is
  honest at 0 or n breaches where the normal approximation collapses to a zero-width interval.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_interval(
    values, confidence: float, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> tuple[float, float, float]:
    """(mean, low, high); low = high = mean for one run; NaNs are ignored. The Student-t interval is clipped
    to `bounds`, the range the metric can take: an attainment interval never passes 100%, a queue length
    never goes below 0."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) == 1:
        return mean, mean, mean
    half = float(stats.t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    low, high = bounds
    return mean, max(low, mean - half), min(high, mean + half)


def wilson_interval(successes: int, trials: int, confidence: float) -> tuple[float, float, float]:
    """(estimate, low, high) of a binomial probability."""
    if trials == 0:
        return math.nan, math.nan, math.nan
    z = float(stats.norm.ppf((1 + confidence) / 2))
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)
