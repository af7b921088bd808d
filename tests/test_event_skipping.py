"""Speed must never change an answer: every scenario here runs through the fast path (runs of pure decode
steps as one event, truncated when a request arrives) and the reference path (one SimPy event per engine
step), and must give *identical* results -- tolerance zero: every request's times, the step end times of
every replica, the time series and the summary, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sim.document import summary_document
from sim.loader import load_scenario_dict
from sim.resolve import resolve
from sim.run import run_simulation
from tests.helpers import scenario_dict

SHAREGPT = {"lengths": {"kind": "sharegpt_like", "max_prompt_len": 2048}}
CASES = {
    "single replica, fixed lengths": scenario_dict(
        workload={
            "lengths": {"kind": "fixed", "input_len": 512, "output_len": 256},
            "arrivals": {"rate": 10},
        },
        num_requests=1500,
    ),
    "fleet, least outstanding, bursty": scenario_dict(
        fleet={"replicas": 4, "router": "least_outstanding"},
        workload={**SHAREGPT, "arrivals": {"process": "gamma", "rate": 40, "burstiness": 0.5}},
        num_requests=2000,
    ),
    "fleet, least KV (reads KV use mid-run)": scenario_dict(
        fleet={"replicas": 3, "router": "least_kv"},
        workload={**SHAREGPT, "arrivals": {"rate": 30}},
        num_requests=1500,
    ),
    "TP2 with straggler jitter": scenario_dict(
        fleet={"tensor_parallel_size": 2, "collective_jitter_sigma": 0.4},
        workload={**SHAREGPT, "arrivals": {"rate": 12}},
        num_requests=1000,
    ),
    "XLA, compile on miss": scenario_dict(
        hardware="tpu-v6e",
        engine={"max_model_len": 4096, "xla": {"precompile": False}},
        workload={**SHAREGPT, "arrivals": {"rate": 4}},
        num_requests=600,
    ),
    "autoscaled spike (samplers read mid-run)": scenario_dict(
        fleet={"replicas": 1, "router": "least_outstanding"},
        workload={
            **SHAREGPT,
            "arrivals": {"rate": 10, "spikes": [{"start_s": 20, "duration_s": 30, "multiplier": 4}]},
        },
        autoscaler={
            "policy": "kv_usage",
            "target": 0.02,
            "max_replicas": 4,
            "interval_s": 5,
            "metric_window_s": 5,
        },
        startup={"provision_s": 0, "container_start_s": 5, "storage_bandwidth_gbs": 100},
        num_requests=1500,
    ),
    "closed loop of 24 clients over two replicas": scenario_dict(
        fleet={"replicas": 2, "router": "least_outstanding"},
        workload={**SHAREGPT, "arrivals": {"rate": "inf"}, "max_concurrency": 24},
        num_requests=800,
    ),
    "conversations with shared system prompts, prefix caching, prefix-aware routing": scenario_dict(
        fleet={"replicas": 2, "router": "prefix_aware"},
        workload={
            **SHAREGPT,
            "arrivals": {"rate": 3},
            "prefix": {"tenants": 3, "tokens": 300},
            "conversations": {"turns": 3, "think_time_s": 2},
        },
        num_requests=600,
    ),
    "client timeouts, ended requests' deadlines passing": scenario_dict(
        workload={**SHAREGPT, "arrivals": {"rate": 45}, "request_timeout_s": 8},
        num_requests=1500,
    ),
    "roofline fleet, TP2 over PCIe with jitter, round robin": scenario_dict(
        model="llama-3.1-70b",
        hardware="rtx-pro-6000",
        fleet={"replicas": 3, "tensor_parallel_size": 2, "router": "round_robin"},
        workload={**SHAREGPT, "arrivals": {"process": "gamma", "rate": 18, "burstiness": 0.5}},
        num_requests=900,
    ),
    "measured profile, three replicas (steps beyond the profile retracted per replica)": {
        **yaml.safe_load(Path("scenarios/cpu_tiny_llama.yaml").read_text()),
        "profile": str(Path("profiles/cpu-tiny-llama.json").resolve()),
        "fleet": {"replicas": 3, "router": "least_outstanding"},
        "workload": {
            "lengths": {"kind": "random", "input_len": 64, "output_len": 200, "range_ratio": 0.5},
            "arrivals": {"process": "gamma", "rate": 400, "burstiness": 0.5},
        },
        "num_requests": 2500,
    },
    "KV pressure and preemption": scenario_dict(
        engine={"max_model_len": 4096, "num_gpu_blocks_override": 600},
        workload={**SHAREGPT, "arrivals": {"rate": 20}},
        num_requests=800,
    ),
}


def assert_identical(fast, reference) -> None:
    """Bit for bit: every request, every step end time, the time series and the whole summary.json
    (warnings, per-replica totals and provenance included)."""
    pd.testing.assert_frame_equal(fast.table, reference.table, check_exact=True)
    pd.testing.assert_frame_equal(fast.timeseries, reference.timeseries, check_exact=True)
    assert len(fast.step_end_s) == len(reference.step_end_s)
    for a, b in zip(fast.step_end_s, reference.step_end_s, strict=True):
        assert np.array_equal(a, b)
    assert summary_document(fast, per_request=True) == summary_document(reference, per_request=True)


@pytest.mark.parametrize("name", CASES)
def test_fast_path_equals_reference_path(name):
    resolved = resolve(load_scenario_dict(CASES[name]))
    fast = run_simulation(resolved, event_skipping=True)
    reference = run_simulation(resolved, event_skipping=False)
    assert_identical(fast, reference)
    if name == "KV pressure and preemption":
        assert fast.table["num_preemptions"].sum() > 0  # the case exercises what it says
    if name.startswith("measured profile"):  # runs were truncated and steps beyond the profile priced
        assert fast.warnings and "larger than any step in the profile" in fast.warnings[0]
        assert len(fast.replica_stats) == 3
    if name.startswith("client timeouts"):
        errors = fast.table["error"]
        assert (errors == "timeout").sum() > 0 and fast.table["success"].sum() > 0


@pytest.mark.parametrize("path", ["scenarios/cpu_tiny_llama.yaml", "scenarios/flash_spike.yaml"])
def test_shipped_scenarios_fast_equals_reference(path):
    """A measured profile's fitted step times (cpu_tiny_llama) and the autoscaled headline."""
    from sim.loader import load_scenario

    resolved = resolve(load_scenario(Path(path), ["variants={}", "duration_s=200"]))
    assert_identical(
        run_simulation(resolved, event_skipping=True), run_simulation(resolved, event_skipping=False)
    )


def test_scale_down_without_drain_kills_a_replica_mid_run():
    """Removing replicas at once (their requests retried) interrupts runs in flight: same results."""
    data = dict(CASES["autoscaled spike (samplers read mid-run)"])
    data = {
        **data,
        "num_requests": 3000,  # long enough for the fleet to shrink after the spike
        "autoscaler": {**data["autoscaler"], "drain_on_scale_down": False, "scale_down_stabilization_s": 0},
    }
    resolved = resolve(load_scenario_dict(data))
    fast = run_simulation(resolved, event_skipping=True)
    reference = run_simulation(resolved, event_skipping=False)
    assert_identical(fast, reference)
    assert (fast.table["attempts"] > 1).any()  # the case exercises what it says


def test_a_finished_runs_objects_do_not_outlive_the_next_run():
    """A study worker runs simulation after simulation: each run's object graph is cyclic (replicas, SimPy
    processes, requests), so the next run collects it rather than leaving it to CPython's deferred full
    collections (which let a worker grow by tens of MB per run)."""
    import gc

    from sim.replica.replica import Replica

    resolved = resolve(load_scenario_dict(scenario_dict(fleet={"replicas": 3}, num_requests=60)))
    first = run_simulation(resolved)
    del first
    second = run_simulation(resolved)
    alive = sum(1 for o in gc.get_objects() if isinstance(o, Replica))
    assert alive <= 3, f"{alive} replicas alive: the first run's were not collected"
    assert second.summary["completed"] == 60
