"""Per-replica capacity: the highest request rate at which one replica still meets the SLO attainment target
(DistServe's goodput: the highest rate at which >= attainment of requests meet both TTFT and TPOT SLOs),
found by bisection on the rate rather than a blind grid.

The search is a pure function of an `attains(rate) -> attainment` callback, so it is tested on closed forms;
search.py supplies a callback that simulates one replica. Every probe of one search uses the same seed
(common random numbers): the arrival gaps are the same draws scaled by 1/rate, so attainment falls with
rate smoothly instead of jumping with each probe's luck.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CapacitySearch:
    rate_rps: float  # highest rate that met the target (0.0 when even min_rate missed it)
    fail_rps: float | None  # lowest rate that missed it (None: max_rate met it; the search stopped there)
    probes: list[tuple[float, float]] = field(default_factory=list)  # (rate, attainment), in probe order

    @property
    def capped(self) -> bool:
        return self.fail_rps is None


def bisect_capacity(
    attains: Callable[[float], float],
    target: float,
    *,
    start_rps: float = 1.0,
    rel_tol: float = 0.05,
    min_rps: float = 1e-3,
    max_rps: float = 1e5,
) -> CapacitySearch:
    """Highest rate r with attains(r) >= target, to within rel_tol: the result r_pass and the next failing
    probe r_fail satisfy (r_fail - r_pass) <= rel_tol * r_pass. Brackets the capacity by doubling (or
    halving) from start_rps, then bisects. Assumes attainment does not rise with rate."""
    probes: list[tuple[float, float]] = []

    def meets(rate: float) -> bool:
        attainment = attains(rate)
        probes.append((rate, attainment))
        return attainment >= target

    rate = start_rps
    if meets(rate):
        passing = rate
        while True:
            rate *= 2
            if rate > max_rps:
                return CapacitySearch(passing, None, probes)
            if not meets(rate):
                failing = rate
                break
            passing = rate
    else:
        failing = rate
        while True:
            rate /= 2
            if rate < min_rps:
                return CapacitySearch(0.0, failing, probes)
            if meets(rate):
                passing = rate
                break
            failing = rate
    while failing - passing > rel_tol * passing:
        mid = 0.5 * (passing + failing)
        if meets(mid):
            passing = mid
        else:
            failing = mid
    return CapacitySearch(passing, failing, probes)


def smallest_passing(meets: Callable[[int], bool], start: int, limit: int) -> int | None:
    """Smallest integer n in [start, limit] with meets(n), assuming meets is monotone (more replicas never
    hurt): tries start, then doubles the step, then bisects the last gap. None when limit fails too."""
    if meets(start):
        return start
    failing, step = start, 1
    while True:
        candidate = min(limit, failing + step)
        if meets(candidate):
            passing = candidate
            break
        if candidate == limit:
            return None
        failing, step = candidate, step * 2
    while passing - failing > 1:
        mid = (passing + failing) // 2
        if meets(mid):
            passing = mid
        else:
            failing = mid
    return passing
