"""A run reduced to what a many-run study compares: headline numbers, the spike window, the objective's
verdict, and the windowed series for fan charts. Small and picklable, so worker processes return it
instead of a whole SimulationResult."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.metrics.cost import fleet_cost
from sim.metrics.summary import good_mask
from sim.risk.objective import AttainmentSeries, attainment_series, judge
from sim.run import SimulationResult
from sim.scenario import Scenario


def spike_window(scenario: Scenario) -> tuple[float, float] | None:
    """[first ramp start, last ramp end] of the workload's flash spikes, or None without spikes."""
    arrivals = scenario.workload.arrivals
    if arrivals is None or not arrivals.spikes:
        return None
    start = min(s.start_s - s.ramp_s for s in arrivals.spikes)
    end = max(s.start_s + s.duration_s + s.ramp_s for s in arrivals.spikes)
    return max(0.0, start), end


@dataclass
class RunDigest:
    label: str  # variant name ("" without variants)
    run: int
    seed: int
    metrics: dict  # name -> number; the table columns of a study
    breached: bool
    breach_reason: str
    series: AttainmentSeries
    ready_replicas: np.ndarray  # per time-series window of the run
    desired_replicas: np.ndarray
    series_window_s: float
    time_to_ready_s: float | None  # a new replica's cold start in this variant
    step_times: str  # where the variant's step times come from (kernel tables, datasheet roofline, ...)
    peak_rss_mb: float = 0.0  # the peak resident memory of the process that ran it, so far (set by execute)


def digest(result: SimulationResult, label: str = "", run: int = 0) -> RunDigest:
    sc = result.resolved.scenario
    objective = sc.monte_carlo.objective
    table, summary = result.table, result.summary
    good = good_mask(table, result.resolved.slo)
    end_s = summary["duration_s"]
    series = attainment_series(table, good, objective.window_s, end_s)
    failed = int(summary["failures"])
    verdict = judge(series, failed, objective)
    arrival = table["arrival_s"].to_numpy()
    cost = fleet_cost(
        result.fleet_log,
        result.resolved.tp,
        result.resolved.fleet.usd_per_chip_hour,
        summary["good_requests"],
    )
    metrics = {
        "goodput_rps": summary["goodput_rps"],
        "slo_attainment_all": summary["slo_attainment_all"],
        "failed_requests": failed,
        "retries": result.fleet_log["retries"],
        "ttft_p99_ms": summary["ttft_ms_p99"],
        "tpot_p99_ms": summary["tpot_ms_p99"],
        "peak_waiting": float(np.nanmax(result.timeseries["waiting"])) if len(result.timeseries) else 0.0,
        "peak_replicas": float(np.nanmax(result.timeseries["replicas_ready"]))
        if len(result.timeseries)
        else 0,
        "longest_breach_s": verdict.longest_breach_s,
        "time_to_recover_s": verdict.time_to_recover_s,
        "replica_hours": cost.replica_hours,
        "chip_hours": cost.chip_hours,
    }
    if result.workload.identity is not None:  # the workload can hit the prefix cache
        metrics["prefix_cache_hit_rate"] = summary["prefix_cache_hit_rate"]
    if cost.cost_usd is not None:
        metrics["cost_usd"] = cost.cost_usd
        per_million = cost.usd_per_1m_good_requests
        metrics["usd_per_1m_good_requests"] = per_million if per_million is not None else float("nan")
    window = spike_window(sc)
    if window is not None:
        inside = (arrival >= window[0]) & (arrival < window[1])
        metrics["spike_attainment"] = (
            float(good[inside].sum() / inside.sum()) if inside.any() else float("nan")
        )
        metrics["spike_goodput_rps"] = float(good[inside].sum() / (window[1] - window[0]))
    ts = result.timeseries
    cold = result.startup.get("cold")
    start = result.startup.get(result.runtime.scenario_cache if result.runtime else "cold", cold)
    return RunDigest(
        label=label,
        run=run,
        seed=result.seed,
        metrics=metrics,
        breached=verdict.breached,
        breach_reason=verdict.reason,
        series=series,
        ready_replicas=ts["replicas_ready"].to_numpy(),
        desired_replicas=ts["replicas_desired"].to_numpy(),
        series_window_s=float(ts["t_end_s"].iloc[0] - ts["t_start_s"].iloc[0]) if len(ts) else 1.0,
        time_to_ready_s=start.total_s if start is not None else None,
        step_times=result.resolved.step_times,
    )
