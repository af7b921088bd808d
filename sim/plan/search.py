"""`plan`: from a scenario, a target rate and an SLO attainment to ranked configurations.

For every candidate of the scenario's `plan.space`:
1. per-replica capacity -- bisection on the rate of one replica under the scenario's steady traffic shape
   (lengths and arrival process; spikes, autoscaler and faults left out), capacity.py;
2. fleet size -- the smallest replica count, from ceil(target / capacity) up (capacity at the optimistic
   end of its bracket), whose run of the scenario at the target rate (spikes, autoscaler with that many as
   its minimum; faults are left to the risk runs) meets the attainment;
3. cost -- mean replicas x chips per replica x the price table's $/chip-hour.
Then the cheapest `finalists` get a failover risk: Monte Carlo runs with the scenario's faults (or, without
any, the loss of one host at mid-run), P(breach of monte_carlo.objective) with its Wilson interval.
Candidates and risk runs go through an executor (local processes or Ray), one task per candidate.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sim.errors import InputError
from sim.executor import LocalExecutor, Progress
from sim.loader import load_scenario_dict, set_path
from sim.metrics.cost import capacity_cost
from sim.plan.capacity import CapacitySearch, bisect_capacity, smallest_passing
from sim.plan.prices import PriceTable
from sim.resolve import resolve
from sim.risk.stats import wilson_interval
from sim.risk.study import StudyJob, execute
from sim.run import SimulationResult, run_simulation
from sim.scenario import Scenario
from sim.scenario_studies import PlanSpec

NOT_SEARCHED = ("plan", "variants", "sweep")


@dataclass(frozen=True)
class CandidateJob:
    label: str
    choices: dict[str, str]
    raw: dict  # the scenario with the candidate's overrides, as the user would write it
    base_dir: Path
    target_rps: float
    attainment: float
    spec: PlanSpec


def _scenario(raw: dict, base_dir: Path) -> Scenario:
    return load_scenario_dict(raw, base_dir=base_dir)


def _arrivals(data: dict) -> dict:
    """The workload's arrivals mapping, whose base rate plan sets; a candidate without one (a recorded
    trace fixes its own arrival times) cannot be scaled to a target rate."""
    arrivals = (data.get("workload") or {}).get("arrivals")
    if not isinstance(arrivals, dict):
        raise InputError(
            "plan scales the base arrival rate: this candidate's workload has no workload.arrivals "
            "(a recorded trace keeps its own arrival times)",
            "workload.arrivals",
        )
    return arrivals


def probe_raw(raw: dict, rate: float, requests: int) -> dict:
    """One replica at `rate` under the steady traffic shape: no spikes, autoscaler or faults."""
    data = copy.deepcopy(raw)
    data.setdefault("fleet", {})["replicas"] = 1
    for key in ("autoscaler", "faults", "duration_s"):
        data.pop(key, None)
    arrivals = _arrivals(data)
    arrivals["rate"] = rate
    for key in ("spikes", "diurnal"):
        arrivals.pop(key, None)
    data["num_requests"] = requests
    return data


def fleet_raw(raw: dict, target_rps: float, replicas: int) -> dict:
    """The whole scenario at the target base rate with `replicas` (the autoscaler's minimum, if any), without
    its faults: sizing asks what the healthy fleet needs; the risk runs add the faults back."""
    data = copy.deepcopy(raw)
    data.pop("faults", None)
    data.setdefault("fleet", {})["replicas"] = replicas
    _arrivals(data)["rate"] = target_rps
    scaler = data.get("autoscaler")
    if scaler is not None:
        scaler["min_replicas"] = replicas
        scaler["max_replicas"] = max(int(scaler.get("max_replicas", replicas)), replicas)
    return data


def attainment_of(result: SimulationResult) -> float:
    """Share of all requests that met both SLOs, failed ones counted as missed (summary.json's
    slo_attainment_all, docs/metrics.md)."""
    return float(result.summary["slo_attainment_all"])


def evaluate_candidate(job: CandidateJob) -> dict:
    """Capacity search and fleet sizing of one candidate (module-level: executors import it)."""
    row: dict = {"candidate": job.label, **job.choices}
    try:
        scenario = _scenario(fleet_raw(job.raw, job.target_rps, 1), job.base_dir)
        resolved = resolve(scenario)
    except InputError as err:
        return row | {"feasible": False, "reason": str(err)}
    spec, seed = job.spec, scenario.seed
    hardware = scenario.hardware if isinstance(scenario.hardware, str) else resolved.hardware.name
    row |= {"hardware": hardware, "tp": resolved.tp}  # the price table is keyed by catalog name

    def attains(rate: float) -> float:
        probe = _scenario(probe_raw(job.raw, rate, spec.probe_requests), job.base_dir)
        return attainment_of(run_simulation(resolve(probe), seed=seed))

    search: CapacitySearch = bisect_capacity(
        attains, job.attainment, start_rps=max(job.target_rps / 8, 0.01), rel_tol=spec.rate_tolerance
    )
    row |= {
        "replica_capacity_rps": search.rate_rps,
        "capacity_fail_rps": search.fail_rps,
        "capacity_probes": len(search.probes),
    }
    if search.rate_rps == 0.0:
        return row | {"feasible": False, "reason": "one replica misses the attainment even at a trickle"}
    # Start from the optimistic end of the capacity bracket (the first failing rate), so the sizing walk
    # up from there finds the smallest count that passes, not one the bracket's width added.
    optimistic = search.fail_rps if search.fail_rps is not None else search.rate_rps
    start = max(1, math.ceil(job.target_rps / optimistic))
    if start > spec.max_replicas:
        return row | {
            "feasible": False,
            "reason": f"needs about {start} replicas, more than plan.max_replicas ({spec.max_replicas})",
        }
    runs: dict[int, dict] = {}

    def meets(replicas: int) -> bool:
        fleet = _scenario(fleet_raw(job.raw, job.target_rps, replicas), job.base_dir)
        result = run_simulation(resolve(fleet), seed=seed)
        duration = result.summary["duration_s"]
        good = attainment_of(result)
        runs[replicas] = {
            "attainment": good,
            "goodput_rps": result.summary["goodput_rps"],
            "good_requests": result.summary["good_requests"],
            "replica_seconds": result.fleet_log["replica_seconds"],
            "mean_replicas": result.fleet_log["replica_seconds"] / duration if duration else replicas,
            "ttft_p99_ms": result.summary["ttft_ms_p99"],
            "tpot_p99_ms": result.summary["tpot_ms_p99"],
            "step_times": result.resolved.step_times,  # kernel tables, measured, datasheet roofline, ...
            "step_costs": result.cost_model_name,
        }
        return good >= job.attainment

    replicas = smallest_passing(meets, start, spec.max_replicas)
    row["sizing_runs"] = len(runs)
    if replicas is None:
        return row | {
            "feasible": False,
            "reason": f"misses the attainment at the target rate even with {spec.max_replicas} replicas",
            **runs[max(runs)],
        }
    return row | {"feasible": True, "reason": "", "replicas": replicas, **runs[replicas]}


@dataclass
class PlanResult:
    name: str
    target_rps: float
    attainment: float
    budget_usd_per_hour: float | None
    pricing: str
    table: pd.DataFrame  # one row per candidate, ranked: feasible within budget by $/hour first
    cheapest: str | None
    robust: str | None
    pareto: list[str]
    scenarios: dict[str, dict]  # candidate -> its ready-to-run scenario (feasible candidates)
    risk_note: str
    warnings: list[str]  # e.g. candidates ranked without a cost because the price table has no price

    def methods(self) -> dict[str, str]:
        """How each number of the plan was obtained, in words (plan.md, plan.json, report.html)."""
        return {
            "capacity": "per-replica capacity: bisection on the rate of one replica under the steady traffic "
            "shape until (first failing - last passing) <= plan.rate_tolerance x last passing (simulated)",
            "sizing": "replicas: the smallest count from ceil(target / capacity) up whose run of the whole "
            "scenario at the target rate meets the attainment (simulated)",
            "cost": f"mean replicas x chips per replica x {self.pricing} $/chip-hour from the price table",
            "risk": self.risk_note,
            "goodput": "DistServe: requests meeting both TTFT and TPOT SLOs per second",
        }


def _risk_faults(raw: dict, target_rps: float) -> tuple[dict, str]:
    """The faults a finalist's risk is run under: the scenario's own, or one host lost at mid-run."""
    if raw.get("faults"):
        return copy.deepcopy(raw["faults"]), "the scenario's faults"
    duration = raw.get("duration_s") or raw["num_requests"] / target_rps
    at = round(duration / 2, 3)
    return {"inject": [{"at_s": at, "kind": "crash", "target": "host", "index": 0}]}, (
        f"one host (host 0 and its replicas) lost at t={at:g} s, mid-run (the scenario has no faults)"
    )


def ready_scenario(job: CandidateJob, row: dict, price: float, monte_carlo: dict | None) -> dict:
    """The candidate as a scenario file a user can run from anywhere: sized, at the target rate, priced,
    with the user's own monte_carlo block and file paths made absolute (it is written elsewhere)."""
    data = fleet_raw(job.raw, job.target_rps, int(row["replicas"]))
    data["name"] = re.sub(r"[^A-Za-z0-9_.\-]", "-", f"{data['name']}__{job.label}")  # a valid scenario name
    if math.isfinite(price):
        data.setdefault("fleet", {})["usd_per_chip_hour"] = price
    if job.raw.get("faults"):
        data["faults"] = copy.deepcopy(job.raw["faults"])
    data.pop("monte_carlo", None)
    if monte_carlo is not None:
        data["monte_carlo"] = copy.deepcopy(monte_carlo)
    if data.get("profile"):
        data["profile"] = str((job.base_dir / data["profile"]).resolve())
    lengths = data["workload"]["lengths"]
    if lengths.get("path"):
        lengths["path"] = str((job.base_dir / lengths["path"]).resolve())
    return data


def run_plan(
    raw: dict,
    base_dir: Path,
    *,
    target_rps: float,
    attainment: float,
    prices: PriceTable,
    pricing: str | None = None,
    budget_usd_per_hour: float | None = None,
    executor=None,
    progress: Progress | None = None,
) -> PlanResult:
    base = _scenario(raw, base_dir)
    if base.plan is None:
        raise InputError(
            "this scenario has no plan block (the space to search); see docs/planning.md", "plan"
        )
    arrivals = base.workload.arrivals
    if arrivals is None or arrivals.is_instant or arrivals.schedule:
        raise InputError(
            "plan scales the base arrival rate: it needs workload.arrivals with a finite rate and no "
            "schedule (shape the load with spikes or diurnal)",
            "workload.arrivals",
        )
    spec = base.plan
    pricing = pricing or spec.pricing
    searched = {k: v for k, v in copy.deepcopy(raw).items() if k not in NOT_SEARCHED}
    searched.setdefault("monte_carlo", {})["runs"] = 1
    jobs = []
    for choices, overrides in spec.candidates():
        data = copy.deepcopy(searched)
        for key, value in overrides.items():
            set_path(data, key.split("."), value, source="plan.space")
        label = "__".join(f"{k}={v}" for k, v in choices.items()) or base.name
        jobs.append(CandidateJob(label, choices, data, base_dir, target_rps, attainment, spec))
    executor = executor or LocalExecutor(1)
    rows = executor.map(
        evaluate_candidate, jobs, labels=[j.label for j in jobs], progress=_stage(progress, "size")
    )
    by_label = {j.label: j for j in jobs}
    for row in rows:
        _price_row(row, prices, pricing, budget_usd_per_hour)
    table = pd.DataFrame(rows)
    eligible = table[table["feasible"] & table["within_budget"]] if len(table) else table
    finalists = (
        list(eligible.sort_values("usd_per_hour")["candidate"][: spec.finalists]) if len(eligible) else []
    )
    risk_note = "not run (plan.risk_runs = 0)"
    if finalists and spec.risk_runs:
        confidence = base.monte_carlo.confidence
        risk_note = _run_risk(table, finalists, by_label, target_rps, spec, confidence, executor, progress)
    table = _ranked(table)
    eligible = table[table["feasible"] & table["within_budget"]]
    priced = eligible[eligible["usd_per_hour"].notna()] if len(eligible) else eligible
    cheapest = priced["candidate"].iloc[0] if len(priced) else None
    warnings = [
        f"{row['candidate']} ({row['hardware']}) is ranked without a cost: {row['price_source']}"
        for row in table.to_dict("records")
        if str(row.get("price_source", "")).startswith("no price")
    ]
    robust = None
    if "failover_risk" in eligible and eligible["failover_risk"].notna().any():
        robust = eligible.sort_values(["failover_risk", "usd_per_hour"])["candidate"].iloc[0]
    scenarios = {
        row["candidate"]: ready_scenario(
            by_label[row["candidate"]], row, row["usd_per_chip_hour"], raw.get("monte_carlo")
        )
        for row in table[table["feasible"]].to_dict("records")
    }
    return PlanResult(
        base.name,
        target_rps,
        attainment,
        budget_usd_per_hour,
        pricing,
        table,
        cheapest,
        robust,
        pareto_front(priced),
        scenarios,
        risk_note,
        warnings,
    )


def _stage(progress: Progress | None, stage: str) -> Progress | None:
    if progress is None:
        return None
    return lambda done, total, label: progress(done, total, f"{stage}: {label}" if label else stage)


def _price_row(row: dict, prices: PriceTable, pricing: str, budget: float | None) -> None:
    """$/hour, good requests per $ and $ per 1M good requests of a sized candidate."""
    row["within_budget"] = False
    if not row.get("feasible"):
        return
    try:
        usd, source = prices.price(row["hardware"], pricing)
    except InputError as err:  # ranked without a cost, after the priced candidates, and said so
        row |= {
            "chips": row["mean_replicas"] * row["tp"],
            "usd_per_chip_hour": math.nan,
            "price_source": f"no price: {err.message}",
            "usd_per_hour": math.nan,
            "fleet_capacity_rps": row["replicas"] * row["replica_capacity_rps"],
            "good_requests_per_usd": math.nan,
            "usd_per_1m_good_requests": math.nan,
            "within_budget": budget is None,
        }
        return
    chips = row["mean_replicas"] * row["tp"]
    per_hour = chips * usd
    good_per_hour = row["goodput_rps"] * 3600.0
    cost = capacity_cost(row["replica_seconds"], row["tp"], usd, row["good_requests"])
    row |= {
        "chips": chips,
        "usd_per_chip_hour": usd,
        "price_source": source,
        "usd_per_hour": per_hour,
        "fleet_capacity_rps": row["replicas"] * row["replica_capacity_rps"],
        "good_requests_per_usd": good_per_hour / per_hour if per_hour else math.nan,
        "usd_per_1m_good_requests": cost.usd_per_1m_good_requests
        if cost.usd_per_1m_good_requests is not None
        else math.inf,
        "within_budget": budget is None or per_hour <= budget,
    }


def _run_risk(table, finalists, by_label, target_rps, spec, confidence, executor, progress) -> str:
    """Failover risk of each finalist, written into its table row; returns how it was measured."""
    notes = set()
    study_jobs = []
    for label in finalists:
        row = table.loc[table["candidate"] == label].iloc[0]
        job = by_label[label]
        data = fleet_raw(job.raw, target_rps, int(row["replicas"]))
        data["faults"], note = _risk_faults(job.raw, target_rps)
        notes.add(note)
        scenario = _scenario(data, job.base_dir)
        study_jobs += [StudyJob(label, i, scenario.seed + i, scenario) for i in range(spec.risk_runs)]
    digests = executor.map(
        execute,
        study_jobs,
        labels=[f"{j.label} run {j.run}" for j in study_jobs],
        progress=_stage(progress, "risk"),
    )
    for label in finalists:
        breaches = [d.breached for d in digests if d.label == label]
        p, low, high = wilson_interval(sum(breaches), len(breaches), confidence)
        mask = table["candidate"] == label
        table.loc[mask, "failover_risk"] = p
        table.loc[mask, "risk_low"] = low
        table.loc[mask, "risk_high"] = high
        table.loc[mask, "risk_runs"] = len(breaches)
    return (
        f"{spec.risk_runs} Monte Carlo runs per finalist under {'; '.join(sorted(notes))}; risk = P(a run "
        f"breaches monte_carlo.objective), Wilson {confidence:.0%} interval"
    )


def _ranked(table: pd.DataFrame) -> pd.DataFrame:
    """Feasible within budget first, cheapest first; then over budget; then infeasible."""
    if not len(table):
        return table
    order = table.assign(
        _group=(~table["feasible"]).astype(int) * 2 + (~table["within_budget"]).astype(int),
        _cost=table.get("usd_per_hour", pd.Series(math.inf, index=table.index)).fillna(math.inf),
    )
    order = order.sort_values(["_group", "_cost", "candidate"], kind="stable")
    return order.drop(columns=["_group", "_cost"]).reset_index(drop=True)


def pareto_front(table: pd.DataFrame) -> list[str]:
    """Candidates no other beats on both cost ($/hour, lower) and fleet capacity (req/s, higher)."""
    if table.empty:
        return []
    points = list(zip(table["candidate"], table["usd_per_hour"], table["fleet_capacity_rps"], strict=True))
    front = []
    for name, cost, capacity in points:
        dominated = any(
            (c2 <= cost and g2 >= capacity) and (c2 < cost or g2 > capacity) for _, c2, g2 in points
        )
        if not dominated:
            front.append(name)
    return front
