"""Arrival times: a gamma renewal process, optionally under a time-varying rate.

`vllm bench serve` and the seed harness draw gaps as gamma(shape=burstiness, scale=1/(rate*burstiness)):
mean 1/rate, coefficient of variation 1/sqrt(burstiness), and every request -- the first included -- waits
one gap. With a constant rate servesim draws exactly that from ``np.random.default_rng(seed)``, so the
same seed gives the harness's own arrival times.

A time-varying rate r(t) (schedule x flash spikes x diurnal cycle) is applied by time rescaling: unit-mean
gaps are drawn in "operational time" and mapped through the inverse of the cumulative rate
Lambda(t) = integral of r. For Poisson arrivals this is exactly a non-homogeneous Poisson process; for
gamma gaps it keeps the burstiness relative to the local rate.
"""

from __future__ import annotations

import numpy as np

from sim.errors import InputError
from sim.traffic.spec import ArrivalSpec

_GRID_POINTS = 200_000  # resolution of the cumulative-rate grid over the horizon


def _unit_gaps(spec: ArrivalSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    if spec.process == "constant":
        return np.ones(n)
    return rng.gamma(shape=spec.burstiness, scale=1.0 / spec.burstiness, size=n)


def _is_modulated(spec: ArrivalSpec) -> bool:
    return bool(spec.schedule or spec.spikes or spec.diurnal)


def rate_at(spec: ArrivalSpec, t: np.ndarray) -> np.ndarray:
    """The instantaneous arrival rate (requests/s) at times t."""
    t = np.asarray(t, dtype=float)
    rate = np.full_like(t, float(spec.rate))
    for point in spec.schedule:
        rate = np.where(t >= point.at_s, point.rate, rate)
    for spike in spec.spikes:
        start, end, ramp = spike.start_s, spike.start_s + spike.duration_s, spike.ramp_s
        if ramp > 0:
            up = np.clip((t - (start - ramp)) / ramp, 0.0, 1.0)
            down = np.clip(((end + ramp) - t) / ramp, 0.0, 1.0)
            weight = np.minimum(up, down)
        else:
            weight = ((t >= start) & (t <= end)).astype(float)
        rate = rate * (1.0 + (spike.multiplier - 1.0) * weight)
    if spec.diurnal is not None:
        d = spec.diurnal
        rate = rate * (1.0 + d.amplitude * np.cos(2 * np.pi * (t - d.peak_at_s) / d.period_s))
    return rate


def _breakpoints(spec: ArrivalSpec) -> list[float]:
    points = [p.at_s for p in spec.schedule]
    for s in spec.spikes:
        end = s.start_s + s.duration_s
        points += [s.start_s - s.ramp_s, s.start_s, end, end + s.ramp_s]
    return points


def cumulative_rate(spec: ArrivalSpec, horizon_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Lambda(t) on a grid over [0, horizon_s]; the grid holds every breakpoint, so piecewise-linear rates
    integrate exactly with the trapezoid rule."""
    grid = np.linspace(0.0, horizon_s, _GRID_POINTS + 1)
    extra = [b for b in _breakpoints(spec) if 0.0 < b < horizon_s]
    if extra:
        grid = np.unique(np.concatenate([grid, extra]))
    rate = rate_at(spec, grid)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(grid))])
    return grid, cum


def _invert(grid: np.ndarray, cum: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """t such that Lambda(t) = tau, by linear interpolation inside the grid cell (flat stretches, where the
    rate is zero, are skipped because searchsorted finds the first cell that reaches tau)."""
    idx = np.clip(np.searchsorted(cum, taus, side="left"), 1, len(cum) - 1)
    lo_c, hi_c = cum[idx - 1], cum[idx]
    frac = np.where(hi_c > lo_c, (taus - lo_c) / np.where(hi_c > lo_c, hi_c - lo_c, 1.0), 1.0)
    return grid[idx - 1] + frac * (grid[idx] - grid[idx - 1])


def _operational_times(
    spec: ArrivalSpec, rng: np.random.Generator, num_requests: int | None, limit: float | None
) -> np.ndarray:
    """Cumulative unit-mean gaps: the first num_requests of them, or all up to `limit` (whichever is fewer).
    Drawn in chunks from one generator, so the values do not depend on the chunk size."""
    if limit is None:
        if num_requests is None:
            raise AssertionError("arrivals need num_requests or a time limit (the schema requires one)")
        return np.cumsum(_unit_gaps(spec, rng, num_requests))
    expected = limit if num_requests is None else min(limit, num_requests)
    chunk = int(expected * 1.1 + 10 * np.sqrt(expected + 1) + 10)
    chunks: list[np.ndarray] = []
    last = 0.0
    while last <= limit and (num_requests is None or sum(len(c) for c in chunks) < num_requests):
        times = last + np.cumsum(_unit_gaps(spec, rng, chunk))
        chunks.append(times)
        last = times[-1]
    taus = np.concatenate(chunks)
    taus = taus[taus <= limit]
    return taus if num_requests is None else taus[:num_requests]


def arrival_times(
    spec: ArrivalSpec, rng: np.random.Generator, *, num_requests: int | None, duration_s: float | None
) -> np.ndarray:
    """Arrival times in seconds from t=0, bounded by num_requests and/or duration_s (whichever comes first)."""
    if num_requests is None and duration_s is None:
        raise AssertionError("arrivals need num_requests or duration_s (the schema requires one)")
    if spec.is_instant:
        assert num_requests is not None  # the schema requires it with rate 'inf'
        return np.zeros(num_requests, dtype=float)
    if not _is_modulated(spec):
        rate = float(spec.rate)
        limit = None if duration_s is None else rate * duration_s
        return _operational_times(spec, rng, num_requests, limit) / rate

    horizon = duration_s if duration_s is not None else max(1.0, (num_requests or 0) / float(spec.rate))
    grid, cum = cumulative_rate(spec, horizon)
    taus = _operational_times(spec, rng, num_requests, None if duration_s is None else cum[-1])
    while len(taus) and cum[-1] < taus[-1]:
        if horizon > 1e9:
            raise InputError(
                "the arrival rate falls to zero before num_requests arrived; set duration_s",
                "workload.arrivals",
            )
        horizon *= 2
        grid, cum = cumulative_rate(spec, horizon)
    return _invert(grid, cum, taus)
