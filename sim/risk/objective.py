"""Windowed SLO attainment and the objective a run must meet.

Attainment of a window = good / arrived over the requests that *arrived* in it (a failed or late request
counts as arrived and not good), so a window's number says how the users who came then were served, however
long their requests took. Windows with no arrivals have no attainment (NaN) and never breach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.scenario_studies import ObjectiveSpec


@dataclass(frozen=True)
class AttainmentSeries:
    t_start_s: np.ndarray
    arrived: np.ndarray
    good: np.ndarray
    window_s: float

    @property
    def attainment(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.arrived > 0, self.good / np.maximum(self.arrived, 1), np.nan)

    @property
    def goodput_rps(self) -> np.ndarray:
        return self.good / self.window_s


def attainment_series(
    table: pd.DataFrame, good: np.ndarray, window_s: float, end_s: float
) -> AttainmentSeries:
    arrival = table["arrival_s"].to_numpy()
    num = max(1, int(np.ceil(end_s / window_s))) if end_s > 0 else 1
    edges = np.arange(num + 1) * window_s
    arrived = np.histogram(arrival, bins=edges)[0]
    good_arrived = np.histogram(arrival[good], bins=edges)[0]
    return AttainmentSeries(edges[:-1], arrived, good_arrived, window_s)


@dataclass(frozen=True)
class Verdict:
    breached: bool
    reason: str  # "" when the objective held
    longest_breach_s: float  # longest run of consecutive windows below target
    breach_s: float  # all windows below target together
    time_to_recover_s: float  # first window below target -> end of the last one (0 if none)


def judge(series: AttainmentSeries, failed: int, objective: ObjectiveSpec) -> Verdict:
    att = series.attainment
    below = np.isfinite(att) & (att < objective.min_attainment)
    w = series.window_s
    longest = run = 0
    for flag in below:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    idx = np.flatnonzero(below)
    recover = float((idx[-1] + 1 - idx[0]) * w) if len(idx) else 0.0
    reasons = []
    if longest * w > objective.max_breach_s:
        reasons.append(
            f"attainment < {objective.min_attainment:.0%} for {longest * w:g} s > {objective.max_breach_s:g} s"
        )
    if objective.max_failed_requests is not None and failed > objective.max_failed_requests:
        reasons.append(f"{failed} failed requests > {objective.max_failed_requests}")
    return Verdict(bool(reasons), "; ".join(reasons), longest * w, float(below.sum() * w), recover)
