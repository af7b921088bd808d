"""Prefill/decode disaggregation: a hand-computed 1P1D story, the decode replica admitting a request with
its prompt's KV delivered, nothing lost between the pools, and the combinations that must exit 2."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from sim.cli import main as simulate_main
from sim.replica.request import RequestState, Status
from sim.replica.scheduler import Scheduler, SchedulerConfig
from tests.helpers import scenario_dict, simulate_dict, trace_scenario, write_trace

STEP_S = 0.01
KV_PER_TOKEN = 32 * 8 * 128 * 2 * 2  # Llama-3.1-8B, TP1, bf16: layers x KV heads x head_dim x (K, V) x bytes


def _split(tmp_path, rows, prefill: dict | None = None, decode: dict | None = None, **link):
    trace = write_trace(tmp_path / "t.csv", rows)
    data = trace_scenario(trace, step_s=STEP_S, engine={"enable_prefix_caching": False})
    data["fleet"] = {"router": "least_outstanding"}
    data["pools"] = {"prefill": prefill or {}, "decode": decode or {}}
    data["disaggregation"] = {"prefill_pool": "prefill", "decode_pool": "decode", **link}
    return data


def test_a_1p1d_requests_ttft_is_prefill_plus_transfer_plus_first_decode_step(tmp_path):
    link = {"kv_bandwidth_gbs": 10.0, "kv_latency_s": 0.002}
    result = simulate_dict(_split(tmp_path, [(0.0, 64, 5)], **link))
    transfer = 0.002 + 64 * KV_PER_TOKEN / 10e9
    record = result.table.iloc[0]
    assert record["ttft_s"] == pytest.approx(STEP_S + transfer + STEP_S)
    assert record["e2e_s"] == pytest.approx(STEP_S + transfer + 5 * STEP_S)  # then 4 more decode steps
    assert record["output_tokens"] == 5
    parts = result.fleet_log["disaggregation"]
    assert parts["prefill_ms_median"] == pytest.approx(STEP_S * 1e3)
    assert parts["kv_transfer_ms_median"] == pytest.approx(transfer * 1e3)
    assert parts["decode_first_token_ms_median"] == pytest.approx(STEP_S * 1e3)
    pools = {p["pool"]: p for p in result.fleet_log["pools"]}
    assert pools["decode"]["completed"] == 1 and pools["prefill"]["completed"] == 0  # ended on decode


def test_the_decode_replica_computes_only_the_last_prompt_token():
    scheduler = Scheduler(
        SchedulerConfig(max_num_seqs=4, max_num_batched_tokens=64, block_size=16, num_blocks=8)
    )
    req = RequestState(0, 0.0, 100, 3)
    req.num_external_tokens = 100
    scheduler.add_request(req)
    plan = scheduler.schedule()
    assert plan.prefill_tokens == (1,) and plan.batch.prefill_context_tokens == (100,)
    assert scheduler.kv.num_used_blocks == 7  # the whole prompt's KV is reserved on admission: ceil(100 / 16)
    scheduler.update_from_step(plan, STEP_S)
    assert req.num_output_tokens == 1  # the first output token, from that one computed token
    while scheduler.has_work():
        scheduler.update_from_step(scheduler.schedule(), STEP_S)
        scheduler.check_invariants()
    assert req.status == Status.FINISHED and req.num_output_tokens == 3
    assert scheduler.kv.num_used_blocks == 0


def test_no_request_is_lost_between_prefill_and_decode(tmp_path):
    rows = [(0.02 * k, 40 + 13 * (k % 9), 2 + k % 11) for k in range(150)]
    data = _split(tmp_path, rows, prefill={"fleet.replicas": 2}, decode={"fleet.replicas": 3})
    result = simulate_dict(data)
    s = result.summary
    assert s["completed"] == s["total_requested"] == 150
    assert result.fleet_log["disaggregation"]["requests"] == 150
    assert result.table["output_tokens"].sum() == sum(o for _, _, o in rows)
    decode = {p["pool"]: p for p in result.fleet_log["pools"]}["decode"]
    assert decode["completed"] == 150


@pytest.mark.parametrize(
    "change, message",
    [
        ({"disaggregation": {"prefill_pool": "p", "decode_pool": "p"}}, "two different pools"),
        ({"disaggregation": {"prefill_pool": "p", "decode_pool": "x"}}, "not a key of pools"),
        ({"disaggregation": {"prefill_pool": "p", "decode_pool": "d", "kv_link": "warp"}}, "no link 'warp'"),
        ({"pools": {"p": {"model": "llama-3.1-70b"}, "d": {}}}, "whole fleet shares"),
        (  # 70B does not fit the prefill pool's single H100
            {
                "model": "llama-3.1-70b",
                "fleet": {"tensor_parallel_size": 4},
                "pools": {"p": {"fleet.tensor_parallel_size": 1}, "d": {}},
            },
            "pool 'p'",
        ),
    ],
)
def test_bad_splits_exit_2_with_one_line(tmp_path, change, message):
    data = scenario_dict(pools={"p": {}, "d": {}}, disaggregation={"prefill_pool": "p", "decode_pool": "d"})
    data.update(change)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(simulate_main, [str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_event_skipping_and_the_reference_path_agree_when_disaggregated():
    from sim.loader import load_scenario_dict
    from sim.resolve import resolve
    from sim.run import run_simulation

    data = scenario_dict(
        pools={"p": {}, "d": {"fleet.replicas": 2}},
        disaggregation={"prefill_pool": "p", "decode_pool": "d"},
        workload={"lengths": {"kind": "fixed", "input_len": 512, "output_len": 64}, "arrivals": {"rate": 8}},
        num_requests=120,
    )
    resolved = resolve(load_scenario_dict(data))
    fast = run_simulation(resolved, event_skipping=True)
    reference = run_simulation(resolved, event_skipping=False)
    assert fast.summary == reference.summary
    assert fast.fleet_log["disaggregation"] == reference.fleet_log["disaggregation"]
