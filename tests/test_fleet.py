"""Fleet dynamics: cold starts, the autoscaler's timeline, routing only to ready replicas, retries, faults,
admission control, and the no-request-vanishes invariant."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.fleet.faults import mean_time_to_failure_s, time_to_failure_s
from sim.fleet.intake import LOST, REJECT_FLEET, REJECT_REPLICA, TIMEOUT
from sim.fleet.spec import FailureProcess
from tests.helpers import simulate_dict, trace_scenario, write_trace

STARTUP = {"provision_s": 5.0, "container_start_s": 3.0, "storage_bandwidth_gbs": 1000.0}


def scaling_scenario(tmp_path, rows, **extra):
    data = trace_scenario(write_trace(tmp_path / "t.csv", rows), step_s=1.0)
    data["startup"] = STARTUP
    data["fleet"] = {"replicas": 1, "replicas_per_host": 1, "router": "least_outstanding"}
    data["autoscaler"] = {
        "policy": "target_inflight",
        "target": 1,
        "min_replicas": 1,
        "max_replicas": 3,
        "interval_s": 10,
        "metric_window_s": 10,
        "sample_s": 1,
        "scale_down_stabilization_s": 60,
    }
    data.update(extra)
    return data


def test_autoscaler_reacts_after_its_delays_and_cold_start_is_the_sum_of_parts(tmp_path):
    # 20 long requests at t=0.5 on one replica, then one request every 2 s from t=11 to t=59.
    # A last request at t=400 keeps the run going long enough to see the scale-down.
    rows = [(0.5, 16, 100)] * 20 + [(11.0 + 2 * k, 16, 4) for k in range(25)] + [(400.0, 16, 4)]
    result = simulate_dict(scaling_scenario(tmp_path, rows))
    startup = result.startup["cold"]
    # provision + container start + weight load, nothing else with a constant step cost
    assert list(startup.components) == ["provision", "container_start", "weight_load"]
    cold_start = 5.0 + 3.0 + result.resolved.model.weight_bytes / 1000e9
    assert startup.total_s == pytest.approx(cold_start)
    log = result.fleet_log
    first = log["autoscaler"][0]
    # First decision at t=10: samples t=0..9 are 0 (t=0) and 20 (t=1..9): mean 18 -> 18 replicas wanted,
    # clamped to max_replicas 3 (the HPA step limit, +4, allows it).
    assert first["t_s"] == 10 and first["metric"] == pytest.approx(18.0) and first["desired"] == 3
    lives = log["lives"]
    assert len(lives) == 3
    for life in lives[1:]:  # both new replicas: launched at the decision, ready one cold start later
        assert life["started_s"] == 10.0
        assert life["ready_s"] == pytest.approx(10.0 + cold_start)
    # Nothing is routed to a replica before it is ready.
    table = result.table
    ready_at = {i: life["ready_s"] for i, life in enumerate(lives)}
    dispatched = table["arrival_s"]  # no API overhead: a request is routed when it arrives
    assert (dispatched.to_numpy() >= table["replica"].map(ready_at).to_numpy()).all()
    assert (table.loc[table["arrival_s"] < 10 + cold_start, "replica"] == 0).all()
    assert set(table["replica"]) == {0, 1, 2}
    # Scale-down waits out its 60 s stabilisation window after the last high recommendation.
    decisions = log["autoscaler"]
    high = max(d["t_s"] for d in decisions if d["recommended"] >= 3)
    down = [d["t_s"] for d in decisions if d["desired"] < d["desired_before"]]
    assert down and min(down) >= high + 60


def test_a_replica_on_a_running_host_skips_provisioning(tmp_path):
    rows = [(0.5, 16, 100)] * 20
    data = scaling_scenario(tmp_path, rows)
    data["fleet"]["replicas_per_host"] = 4
    result = simulate_dict(data)
    cold_start = result.startup["cold"].total_s
    for life in result.fleet_log["lives"][1:]:
        assert life["ready_s"] - life["started_s"] == pytest.approx(cold_start - 5.0)


def test_retries_keep_the_original_arrival(tmp_path):
    # Two replicas; replica 0 crashes at t=5.5 holding two requests mid-decode.
    rows = [(0.0, 16, 20), (0.0, 16, 20)]
    data = trace_scenario(write_trace(tmp_path / "t.csv", rows), step_s=1.0)
    data["fleet"] = {"replicas": 2, "replicas_per_host": 1, "router": "round_robin", "retry": {"budget": 1}}
    data["faults"] = {"inject": [{"at_s": 5.5, "target": "replica", "index": 0}], "detection_s": 0}
    data["startup"] = STARTUP
    table = simulate_dict(data).table
    retried = table[table["attempts"] == 2]
    assert len(retried) == 1 and retried["success"].all()
    row = retried.iloc[0]
    assert row["arrival_s"] == 0.0 and row["replica"] == 1
    assert row["first_token_s"] > 5.5  # the first token of the attempt that completed
    assert row["ttft_s"] == pytest.approx(row["first_token_s"] - 0.0)
    assert row["e2e_s"] == pytest.approx(row["end_s"] - 0.0)


def test_spent_retry_budget_fails_with_a_reason(tmp_path):
    rows = [(0.0, 16, 20)]
    data = trace_scenario(write_trace(tmp_path / "t.csv", rows), step_s=1.0)
    data["fleet"] = {"replicas": 1, "retry": {"budget": 0}}
    data["faults"] = {"inject": [{"at_s": 3.5}], "replace": False}
    table = simulate_dict(data).table
    assert table["error"].tolist() == [LOST] and table["end_s"].tolist() == [3.5]


def test_requests_wait_for_a_ready_replica_or_time_out(tmp_path):
    # The only replica crashes at t=1 and is never replaced: later requests are held, then time out.
    rows = [(2.0, 16, 4), (3.0, 16, 4)]
    data = trace_scenario(write_trace(tmp_path / "t.csv", rows), step_s=1.0)
    data["workload"]["request_timeout_s"] = 30
    data["faults"] = {"inject": [{"at_s": 1.0}], "replace": False, "detection_s": 0.5}
    table = simulate_dict(data).table
    assert table["error"].tolist() == [TIMEOUT, TIMEOUT]
    assert table["end_s"].tolist() == [32.0, 33.0]


def test_held_requests_go_to_the_replacement_when_it_is_ready(tmp_path):
    rows = [(2.0, 16, 4)]
    data = trace_scenario(write_trace(tmp_path / "t.csv", rows), step_s=1.0)
    data["startup"] = STARTUP
    data["faults"] = {"inject": [{"at_s": 1.0}], "detection_s": 0.5}
    result = simulate_dict(data)
    ready = result.fleet_log["lives"][1]["ready_s"]
    assert ready == pytest.approx(1.5 + result.startup["cold"].total_s)
    row = result.table.iloc[0]
    assert row["success"] and row["replica"] == 1 and row["first_token_s"] == pytest.approx(ready + 1.0)


def test_admission_caps_reject_with_http_reasons(tmp_path):
    rows = [(0.0, 16, 4)] * 10
    data = trace_scenario(write_trace(tmp_path / "t.csv", rows), step_s=1.0)
    data["fleet"] = {"replicas": 1, "admission": {"max_waiting_per_replica": 1}}
    table = simulate_dict(data).table
    # All ten arrive at once: the first waits, the other nine find the replica's queue full.
    assert table["error"].value_counts().to_dict() == {REJECT_REPLICA: 9, "": 1}
    data["fleet"] = {"replicas": 2, "admission": {"max_fleet_waiting": 3}}
    table = simulate_dict(data).table
    assert table["error"].value_counts().to_dict() == {REJECT_FLEET: 7, "": 3}


def test_a_host_crash_takes_all_its_replicas(tmp_path):
    rows = [(0.1 * k, 16, 50) for k in range(40)]
    data = trace_scenario(write_trace(tmp_path / "t.csv", rows), step_s=0.5)
    data["fleet"] = {"replicas": 4, "replicas_per_host": 2, "router": "round_robin"}
    data["faults"] = {"inject": [{"at_s": 3.0, "target": "host", "index": 1}], "detection_s": 0.0}
    data["startup"] = STARTUP
    result = simulate_dict(data)
    lives = result.fleet_log["lives"]
    crashed = [i for i, life in enumerate(lives) if life["end_reason"] == "injected crash"]
    assert crashed == [2, 3]
    assert len(lives) == 6  # two replacements, on a new host (new hosts pay provisioning)
    assert all(life["started_s"] == 3.0 for life in lives[4:])
    assert result.table["success"].all()


@pytest.mark.parametrize("distribution,shape", [("exponential", 1.0), ("weibull", 0.7), ("weibull", 2.0)])
def test_a_tp_group_fails_at_its_first_chip(distribution, shape):
    process = FailureProcess(distribution=distribution, mtbf_h=10.0, weibull_shape=shape)
    rng = np.random.default_rng(1)
    samples = np.array([time_to_failure_s(process, 8, rng) for _ in range(40000)])
    expected = mean_time_to_failure_s(process, 8)
    # closed forms: exponential mean / n; Weibull: the min of n has scale * n^(-1/k)
    assert expected == pytest.approx(
        10 * 3600 / 8 if distribution == "exponential" else 36000 * 8 ** (-1 / shape)
    )
    assert samples.mean() == pytest.approx(expected, rel=0.03)


REASONS = {"", LOST, TIMEOUT, REJECT_REPLICA, REJECT_FLEET}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    replicas=st.integers(1, 4),
    per_host=st.integers(1, 2),
    budget=st.integers(0, 2),
    chip_mtbf_h=st.floats(0.002, 0.05),
    detection_s=st.floats(0, 5),
    autoscale=st.booleans(),
)
def test_no_request_vanishes_under_random_faults(
    tmp_path, seed, replicas, per_host, budget, chip_mtbf_h, detection_s, autoscale
):
    rng = np.random.default_rng(seed)
    rows = sorted(
        (float(t), int(p), int(o))
        for t, p, o in zip(
            rng.uniform(0, 60, 120), rng.integers(1, 64, 120), rng.integers(1, 40, 120), strict=True
        )
    )
    data = trace_scenario(write_trace(tmp_path / f"t{seed}.csv", rows), step_s=0.05)
    data["workload"]["request_timeout_s"] = 40
    data["startup"] = {"provision_s": 3.0, "container_start_s": 1.0, "storage_bandwidth_gbs": 1000.0}
    data["fleet"] = {
        "replicas": replicas,
        "replicas_per_host": per_host,
        "router": "least_outstanding",
        "retry": {"budget": budget},
        "admission": {"max_waiting_per_replica": 30},
    }
    data["faults"] = {
        "chip_failures": {"mtbf_h": chip_mtbf_h},
        "host_failures": {"distribution": "weibull", "mtbf_h": 0.02, "weibull_shape": 1.5},
        "preemption": {"mean_interval_h": 0.01, "notice_s": 2.0},
        "detection_s": detection_s,
    }
    if autoscale:
        data["autoscaler"] = {
            "policy": "queue_length",
            "target": 2,
            "min_replicas": 1,
            "max_replicas": max(replicas, 3),
            "interval_s": 2,
            "metric_window_s": 4,
        }
    result = simulate_dict(data, seed=seed)
    table = result.table
    assert len(table) == len(rows)  # every request is in the table ...
    assert table["end_s"].notna().all()  # ... and ended
    assert set(table["error"]) <= REASONS  # completed, or failed with a known reason
    ok = table["success"]
    assert (table.loc[ok, "output_tokens"] == table.loc[ok, "requested_output_tokens"]).all()
    assert (table["attempts"] <= budget + 1).all()
    assert (table.loc[ok, "ttft_s"] >= 0).all() and (table["end_s"] >= table["arrival_s"]).all()
    assert math.isfinite(result.fleet_log["replica_seconds"])


def test_with_a_repair_time_the_replacement_waits_for_the_repaired_machine(tmp_path):
    rows = [(2.0, 16, 4)]
    data = trace_scenario(write_trace(tmp_path / "t.csv", rows), step_s=1.0)
    data["startup"] = STARTUP
    data["faults"] = {"inject": [{"at_s": 1.0}], "detection_s": 0.5, "repair_s": 40.0}
    result = simulate_dict(data)
    cold = result.startup["cold"].total_s
    # detection at 1.5 s, then repair (40 s) in place of provisioning (5 s), then the rest of the cold start
    assert result.fleet_log["lives"][1]["ready_s"] == pytest.approx(1.5 + 40.0 + cold - 5.0)


def test_outstanding_counter_matches_the_scheduler_whenever_the_router_reads_it(tmp_path, monkeypatch):
    """Routers read a per-replica counter; it must equal waiting + running in the scheduler every time,
    through timeouts, preemption, crashes and retries."""
    from sim.fleet import router

    original = router.LeastOutstandingRouter.choose
    checked = []

    def checking(self, replicas, session):
        for r in replicas:
            if r.is_up:
                assert r.outstanding == r.scheduler.num_waiting + r.scheduler.num_running
        checked.append(len(replicas))
        return original(self, replicas, session)

    monkeypatch.setattr(router.LeastOutstandingRouter, "choose", checking)
    rng = np.random.default_rng(3)
    rows = sorted(
        (float(t), int(p), 60)
        for t, p in zip(rng.uniform(0, 30, 2000), rng.integers(1, 400, 2000), strict=True)
    )
    data = trace_scenario(write_trace(tmp_path / "t.csv", rows), step_s=0.05)
    data["cost_model"] = {"kind": "roofline"}
    data["engine"] = {"max_model_len": 1024, "num_gpu_blocks_override": 80}
    data["workload"]["request_timeout_s"] = 8
    data["fleet"] = {"replicas": 3, "router": "least_outstanding", "retry": {"budget": 2}}
    data["faults"] = {"inject": [{"at_s": 10.0}, {"at_s": 20.0, "index": 3}], "detection_s": 0.5}
    data["startup"] = STARTUP
    table = simulate_dict(data).table
    assert len(checked) >= 300
    assert {"timeout"} <= set(table["error"]) and table["num_preemptions"].sum() > 0


def test_closed_loop_clients_send_the_next_request_when_one_ends(tmp_path):
    """Two clients, four requests sent at once (rate inf), constant 10 ms steps, 16-token prompts, 3 output
    tokens. The two first sends reach the idle engine one after the other, so step 1 prefills request 0
    alone and request 1 joins step 2. Request 0 ends with step 3 (t = 30 ms) and only then is request 2
    sent; it lands while step 4 runs (request 1's last token, which ends it at 40 ms and sends request 3),
    prefills in step 5 and ends with step 7; request 3 prefills in step 6 and ends with step 8. Latencies
    count from when each request is sent, as `vllm bench serve` times them."""
    trace = write_trace(tmp_path / "t.csv", [(0.0, 16, 3)] * 4)
    data = trace_scenario(trace, step_s=0.01)
    data["workload"]["max_concurrency"] = 2
    table = simulate_dict(data).table.sort_values("req_id")
    assert table["arrival_s"].tolist() == pytest.approx([0.0, 0.0, 0.03, 0.04])
    assert table["first_token_s"].tolist() == pytest.approx([0.01, 0.02, 0.05, 0.06])
    assert table["end_s"].tolist() == pytest.approx([0.03, 0.04, 0.07, 0.08])
    assert table["ttft_s"].tolist() == pytest.approx([0.01, 0.02, 0.02, 0.02])
    # without the cap the trace's simultaneous arrivals share every step
    del data["workload"]["max_concurrency"]
    assert simulate_dict(data).table["end_s"].max() == pytest.approx(0.03)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    clients=st.integers(1, 6),
    lengths=st.lists(st.tuples(st.integers(1, 300), st.integers(1, 40)), min_size=1, max_size=25),
)
def test_never_more_in_flight_than_clients(tmp_path, clients, lengths):
    """At no moment are more than max_concurrency requests between sent and ended, and every one ends."""
    trace = write_trace(tmp_path / "t.csv", [(0.0, i, o) for i, o in lengths])
    data = trace_scenario(trace, step_s=0.005)
    data["workload"]["max_concurrency"] = clients
    table = simulate_dict(data).table
    assert table["success"].all()
    events = sorted([(t, 1) for t in table["arrival_s"]] + [(t, -1) for t in table["end_s"]])
    in_flight = np.cumsum([delta for _, delta in events])  # ends sort before sends at the same time
    assert in_flight.max() <= clients


def test_the_servers_one_tokenizer_queues_requests(tmp_path):
    """Three 1000-token prompts sent at t = 0 to a server that tokenizes 1 ms per token on one thread reach
    the engine at 1, 2 and 3 s; each prefills alone in a 10 ms step, so TTFTs are 1.01, 2.01 and 3.01 s."""
    trace = write_trace(tmp_path / "t.csv", [(0.0, 1000, 1)] * 3)
    data = trace_scenario(trace, step_s=0.01, engine={"tokenize_s_per_token": 1e-3})
    table = simulate_dict(data).table.sort_values("req_id")
    assert table["arrival_s"].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert table["ttft_s"].tolist() == pytest.approx([1.01, 2.01, 3.01])
