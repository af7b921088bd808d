"""Sampling fault times. A replica of TP chips fails at the first of its chips' failures:
exponential: the minimum of n exponentials of mean m is exponential of mean m / n;
Weibull(k, scale s): the minimum of n is Weibull(k, s * n^(-1/k)), and s = m / Gamma(1 + 1/k) keeps the
per-unit mean at m.
"""

from __future__ import annotations

import math

import numpy as np

from sim.scenario_dynamics import FailureProcess

HOUR_S = 3600.0


def time_to_failure_s(process: FailureProcess, units: int, rng: np.random.Generator) -> float:
    """Seconds until the first of `units` independent units fails."""
    mean_s = process.mtbf_h * HOUR_S
    if process.distribution == "exponential":
        return float(rng.exponential(mean_s / units))
    k = process.weibull_shape
    scale = mean_s / math.gamma(1.0 + 1.0 / k) * units ** (-1.0 / k)
    return float(scale * rng.weibull(k))


def mean_time_to_failure_s(process: FailureProcess, units: int) -> float:
    """The closed-form mean of time_to_failure_s (for tests and reports)."""
    mean_s = process.mtbf_h * HOUR_S
    if process.distribution == "exponential":
        return mean_s / units
    return mean_s * units ** (-1.0 / process.weibull_shape)
