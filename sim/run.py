"""One simulation run, end to end: scenario -> workload -> fleet -> metrics.

Deterministic for a given scenario and seed: the workload comes from seeded generators, the replicas hold
no randomness, and SimPy orders same-time events by insertion. Wall-clock time is measured for the console
only and never written into results.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import simpy

from sim.cost.base import DeviceTimeModel, StepBatch, StepCostModel
from sim.cost.speculative import SpeculativeStepCost
from sim.fleet.autoscaler import Autoscaler
from sim.fleet.fleet import Fleet, PoolParts
from sim.fleet.pool import PoolInfo
from sim.fleet.sampler import StateSampler
from sim.metrics.itl import pooled_itl
from sim.metrics.requests import request_table
from sim.metrics.summary import good_mask, summarize
from sim.metrics.timeseries import build_timeseries, choose_window_s
from sim.replica.ledger import ReplicaStats
from sim.replica.request import RequestState
from sim.resolve import ResolvedPool, ResolvedScenario
from sim.runtime.settings import RuntimeSettings
from sim.runtime.startup import StartupBreakdown, startup_breakdown
from sim.traffic.workload import Workload, build_workload

ProgressCallback = Callable[[float, float], None]  # (simulated seconds so far, expected horizon)


@dataclass
class SimulationResult:
    resolved: ResolvedScenario
    seed: int
    workload: Workload
    requests: list[RequestState]
    table: pd.DataFrame  # one row per request
    summary: dict  # the harness's summary keys
    timeseries: pd.DataFrame
    step_end_s: list[np.ndarray]  # per replica: end time of every engine step
    replica_stats: list[ReplicaStats]
    cost_model_name: str
    runtime: RuntimeSettings | None  # None with a constant step cost, which bypasses the runtime layer
    startup: dict[str, StartupBreakdown]  # "cold" / "warm" -> a replica's time to ready
    fleet_log: dict  # replica lives, fleet events, autoscaler decisions, capacity held
    warnings: list[str]  # things the user should know about the numbers (e.g. extrapolation)
    wall_s: float  # wall-clock seconds the run took (console only)

    @property
    def num_steps(self) -> int:
        return sum(s.num_steps for s in self.replica_stats)


def run_simulation(
    resolved: ResolvedScenario,
    *,
    seed: int | None = None,
    progress: ProgressCallback | None = None,
    workload: Workload | None = None,
    event_skipping: bool | None = None,
) -> SimulationResult:
    """workload: simulate this exact trace instead of drawing one (validation replays one trace on both).
    event_skipping: False runs the reference path, one SimPy event per engine step (same results); default
    on, unless the environment sets SERVESIM_EVENT_SKIPPING=0."""
    if event_skipping is None:
        event_skipping = os.environ.get("SERVESIM_EVENT_SKIPPING", "1") != "0"
    started = time.perf_counter()
    # A finished run's objects (requests, replicas, SimPy processes) form reference cycles, and the
    # gc.freeze() below leaves them in the oldest generation, whose full collection CPython defers: a process
    # running many simulations (a study worker, a sweep, plan) grew ~37 MB per flash-spike run. Collect what
    # earlier runs left before this one builds its own.
    gc.collect()
    seed = resolved.seed if seed is None else seed
    workload = workload if workload is not None else build_workload(resolved.workload, seed)
    pools = [_pool_parts(pool, seed, workload) for pool in resolved.pool_list]
    # What a run reports as "a new replica's start": the first pool that scales (else the first pool)
    lead = next((i for i, p in enumerate(pools) if p.parts.settings.autoscaler is not None), 0)
    startup, runtime = pools[lead].startup_by_cache, resolved.pool_list[lead].resolved.runtime
    cost_model_name = " | ".join(p.cost_model_name for p in pools)

    env = simpy.Environment()
    split = resolved.disaggregation
    fleet = Fleet(
        env,
        resolved.fleet,
        [p.parts for p in pools],
        workload,
        seed=seed,
        event_skipping=event_skipping,
        phases=split.phases() if split is not None else None,
    )
    autoscalers = [
        (pool.parts.info.name, Autoscaler(env, pool.parts.settings.autoscaler, controller))
        for pool, controller in zip(pools, fleet.controllers, strict=True)
        if pool.parts.settings.autoscaler is not None
    ]
    horizon = float(workload.arrival_s[-1]) if workload.num_requests else 0.0
    sampler = StateSampler(env, fleet, choose_window_s(horizon, resolved.metrics.window_s))
    fleet.watchers.append(lambda: sampler.next_s)
    for _, autoscaler in autoscalers:
        fleet.watchers.append(autoscaler.next_read_s)

    # Run in slices of simulated time so a progress bar can follow; the run ends when every request has.
    slice_s = max(horizon / 200.0, sampler.window_s)
    try:
        while not fleet.all_ended.triggered:
            env.run(until=env.any_of([fleet.all_ended, env.timeout(slice_s)]))
            if progress is not None:
                progress(env.now, horizon)
            # Requests, replicas and their records live to the end of the run; left in the collector's
            # generations, every full collection would walk all of them again (~5% of a 1M-request run).
            gc.freeze()
    finally:
        gc.unfreeze()
    samples = sampler.finish()

    requests = fleet.requests
    step_end_s = [np.frombuffer(r.ledger.step_end_s, dtype=np.float64) for r in fleet.replicas]
    replica_stats = [r.ledger.stats() for r in fleet.replicas]
    table = request_table(requests, resolved.fleet.request_timeout_s, workload.output_tokens)
    ok = table["success"].to_numpy()
    itl_values, itl_counts = pooled_itl(
        ((r.replica_id, r.segments) for r, s in zip(requests, ok, strict=True) if s), step_end_s
    )
    summary = summarize(table, itl_values, itl_counts, resolved.slo)
    stalls = sorted(event for r in fleet.replicas for event in r.ledger.stall_events)
    timeseries = build_timeseries(
        table, good_mask(table, resolved.slo), samples, summary["duration_s"], stalls
    )
    warnings = []
    capped = int((table["success"] & (table["output_tokens"] < table["requested_output_tokens"])).sum())
    if capped:
        warnings.append(
            f"{capped} requests asked for more output than max_model_len ({resolved.fleet.max_model_len}) leaves "
            "after their prompt; vLLM caps such outputs, and so did the simulation"
        )
    extrapolated = sum(s.extrapolated_steps for s in replica_stats)
    if extrapolated:
        total = sum(s.num_steps for s in replica_stats)
        warnings.append(
            f"{extrapolated} of {total} engine steps were larger than any step in the profile; they were priced "
            "by the roofline scaled to the profile at the edge of its range"
        )
    return SimulationResult(
        resolved=resolved,
        seed=seed,
        workload=workload,
        requests=requests,
        table=table,
        summary=summary,
        timeseries=timeseries,
        step_end_s=step_end_s,
        replica_stats=replica_stats,
        cost_model_name=cost_model_name,
        runtime=runtime,
        startup=startup,
        fleet_log=_with_pool_outcomes(
            fleet.log(env.now), fleet, table, good_mask(table, resolved.slo), summary
        )
        | {"autoscaler": _decisions(autoscalers)}
        | ({"disaggregation": _ttft_parts(requests)} if split is not None else {}),
        warnings=warnings,
        wall_s=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class _Pool:
    """One pool, built for a run: what the fleet runs, and what the results report of it."""

    parts: PoolParts
    startup_by_cache: dict[str, StartupBreakdown]  # "cold" / "warm" -> a replica's time to ready
    cost_model_name: str


def _pool_parts(pool: ResolvedPool, seed: int, workload: Workload) -> _Pool:
    """A pool's step-cost models (one per replica), scheduler and cold start, from its resolved scenario."""
    resolved = pool.resolved
    model = resolved.build_step_model()
    runtime = resolved.runtime
    if runtime is None:  # a constant step time: no runtime layer, one stateless model for every replica
        assert isinstance(model, StepCostModel)
        constant = model
        startup = {"cold": startup_breakdown(resolved.startup, None, "cold")}
        new_replica_start = startup["cold"]
        cost_model_name = constant.name

        def make_cost_model(replica_id: int) -> StepCostModel:
            return constant

    else:
        assert isinstance(model, DeviceTimeModel)
        device, settings = model, runtime
        prompt = int(workload.prompt_tokens[0]) if workload.num_requests else 0
        startup = {
            cache: startup_breakdown(
                resolved.startup,
                settings,
                cache,
                device=device,
                prompt_tokens=min(prompt, resolved.engine.max_num_batched_tokens),
            )
            for cache in ("cold", "warm")
        }
        new_replica_start = startup[settings.scenario_cache]
        cost_model_name = f"{device.name} + {settings.name} runtime"

        def make_cost_model(replica_id: int) -> StepCostModel:
            return settings.build(device, replica_id, seed)

    scheduler_config = resolved.scheduler_config
    price_steps = make_cost_model
    plan = resolved.speculative
    if plan is not None:  # the run's seed draws acceptances; a proposer adds its time to each step
        scheduler_config = replace(scheduler_config, speculative=plan.decoding(seed))
        drafter = resolved.build_drafter()

        def price_steps(replica_id: int) -> StepCostModel:
            return SpeculativeStepCost(make_cost_model(replica_id), drafter, plan.num_speculative_tokens)

    info = PoolInfo(
        name=pool.name,
        index=pool.index,
        hardware=resolved.hardware_name,
        chips_per_replica=resolved.tp,
        usd_per_chip_hour=resolved.fleet.usd_per_chip_hour,
        max_num_seqs=resolved.engine.max_num_seqs,
        weight=pool.weight,
        spill_waiting=pool.spill_waiting,
        spill_ttft_s=spill_ttft / 1e3 if (spill_ttft := resolved.scenario.fleet.spill_ttft_ms) else None,
        prefill_tokens_per_s=_prefill_rate(price_steps, resolved.engine.max_num_batched_tokens)
        if spill_ttft
        else 0.0,
    )
    parts = PoolParts(info, resolved.fleet, scheduler_config, price_steps, new_replica_start)
    return _Pool(parts, startup, cost_model_name)


def _decisions(autoscalers: list[tuple[str, Autoscaler]]) -> list[dict]:
    """Every autoscaler decision in time order (each names its pool when there are several)."""
    if len(autoscalers) == 1:
        return autoscalers[0][1].decisions
    return sorted(
        (d | {"pool": name} for name, scaler in autoscalers for d in scaler.decisions), key=lambda d: d["t_s"]
    )


def _with_pool_outcomes(
    log: dict, fleet: Fleet, table: pd.DataFrame, good: np.ndarray, summary: dict
) -> dict:
    """With several pools: what each pool served -- completed and good requests, goodput, TTFT and TPOT
    medians -- attributed by the replica a request ended on."""
    if "pools" not in log:
        return log
    pool_of = np.array([r.pool for r in fleet.replicas], dtype=np.int64)
    replica = table["replica"].to_numpy()
    served = table["success"].to_numpy() & (replica >= 0)
    pool = np.full(len(table), -1, dtype=np.int64)
    pool[served] = pool_of[replica[served]]
    duration = summary["duration_s"] or 1.0
    for index, entry in enumerate(log["pools"]):
        mine = pool == index
        entry["completed"] = int(mine.sum())
        entry["good_requests"] = int((mine & good).sum())
        entry["goodput_rps"] = entry["good_requests"] / duration
        for name, column in (("ttft_ms_median", "ttft_s"), ("tpot_ms_median", "tpot_s")):
            values = table[column].to_numpy()[mine]
            values = values[np.isfinite(values)]
            entry[name] = float(np.median(values) * 1e3) if len(values) else None
    return log


def _ttft_parts(requests: list[RequestState]) -> dict:
    """Where a disaggregated fleet's TTFT goes, over the completed requests (medians and p99, ms): the
    prefill pool's part (arrival to prefill end, queueing included), the KV transfer, and the decode pool's
    part (KV arrival to first token: queueing for a decode replica and its first step)."""
    done = [r for r in requests if r.finished and not math.isnan(r.prefill_end_s)]
    prefill = np.array([r.prefill_end_s - r.arrival_s for r in done])
    transfer = np.array([r.kv_transfer_s for r in done])
    decode = np.array([r.first_token_s - r.prefill_end_s - r.kv_transfer_s for r in done])
    out: dict = {"requests": len(done)}
    for name, values in (("prefill", prefill), ("kv_transfer", transfer), ("decode_first_token", decode)):
        out[f"{name}_ms_median"] = float(np.median(values) * 1e3) if len(values) else None
        out[f"{name}_ms_p99"] = float(np.percentile(values, 99) * 1e3) if len(values) else None
    return out


def _prefill_rate(price_steps: Callable[[int], StepCostModel], budget: int) -> float:
    """A replica's prefill tokens per second at a full token budget (one prompt chunk of `budget` tokens,
    compile stalls left out), from a step-cost model made for the purpose (an id no replica has)."""
    cost = price_steps(2**31 - 1).step_cost(StepBatch(0, 0, (budget,), (budget,), 1))
    seconds = cost.seconds - cost.compile_stall_s
    return budget / seconds if seconds > 0 else 0.0
