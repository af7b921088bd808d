"""Small builders shared by the tests: scenarios as dicts, traces on disk, a pure scheduler driver."""

from __future__ import annotations

import copy
from pathlib import Path

from sim.loader import load_scenario_dict
from sim.replica.request import RequestState
from sim.replica.scheduler import Scheduler
from sim.resolve import resolve
from sim.run import run_simulation

BASE = {
    "name": "test",
    "model": "llama-3.1-8b",
    "hardware": "h100",
    "engine": {"max_model_len": 8192},
    "workload": {"lengths": {"kind": "fixed", "input_len": 128, "output_len": 16}, "arrivals": {"rate": 5}},
    "num_requests": 50,
}


def scenario_dict(**overrides) -> dict:
    """BASE with nested overrides, e.g. scenario_dict(fleet={'replicas': 2})."""
    data = copy.deepcopy(BASE)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def simulate_dict(data: dict, seed: int | None = None):
    return run_simulation(resolve(load_scenario_dict(data)), seed=seed)


def write_trace(path: Path, rows: list[tuple[float, int, int]]) -> Path:
    lines = ["arrival_s,input_tokens,output_tokens"] + [f"{a},{i},{o}" for a, i, o in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def trace_scenario(
    trace: Path, *, step_s: float, engine: dict | None = None, slo: dict | None = None
) -> dict:
    """A scenario replaying `trace` with a constant step time, reaching the engine at its arrival times (no
    front-end tokenizer queue unless `engine` sets one): the hand-computed stories time the engine."""
    data = scenario_dict(
        cost_model={"kind": "constant", "step_s": step_s},
        engine={"max_model_len": 8192, "tokenize_s_per_token": 0.0, **(engine or {})},
    )
    data["workload"] = {"lengths": {"kind": "trace", "path": str(trace)}}
    del data["num_requests"]
    if slo:
        data["slo"] = slo
    return data


def drive(scheduler: Scheduler, requests: list[RequestState], step_s: float, check: bool = True) -> float:
    """Run the pure scheduler to completion with a constant step time and no SimPy, checking its
    invariants after every step. Returns the end time."""
    pending = sorted(requests, key=lambda r: r.arrival_s)
    t, i = 0.0, 0
    for _ in range(1_000_000):
        while i < len(pending) and pending[i].arrival_s <= t:
            scheduler.add_request(pending[i])
            i += 1
        if not scheduler.has_work():
            if i == len(pending):
                return t
            t = pending[i].arrival_s
            continue
        plan = scheduler.schedule()
        assert scheduler.kv.num_used_blocks <= scheduler.kv.num_blocks
        if plan.batch.num_seqs:
            t += step_s
        scheduler.update_from_step(plan, t)
        if check:
            scheduler.check_invariants()
    raise AssertionError("scheduler did not drain")
