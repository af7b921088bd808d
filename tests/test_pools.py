"""Fleets of several pools behind one router: the pool-aware routers, a full pool spilling over, nothing
lost between pools, per-pool cost, and pools that must be refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from sim.cli import main as simulate_main
from sim.fleet.pool import PoolInfo
from sim.fleet.router import CheapestFirstRouter, RouteQuery, SpillOverRouter, WeightedPoolRouter
from sim.loader import load_scenario_dict
from sim.metrics.cost import fleet_cost
from sim.resolve import resolve
from sim.run import run_simulation
from tests.helpers import scenario_dict, simulate_dict, trace_scenario, write_trace

QUERY = RouteQuery(-1)


def _replica(replica_id: int, pool: int, outstanding: int = 0, waiting: int = 0):
    return SimpleNamespace(
        replica_id=replica_id,
        pool=pool,
        outstanding=outstanding,
        scheduler=SimpleNamespace(num_waiting=waiting),
    )


def _pools(*specs) -> list[PoolInfo]:
    return [
        PoolInfo(f"p{i}", i, "x", 1, price, max_num_seqs=4, weight=weight, spill_waiting=spill)
        for i, (price, weight, spill) in enumerate(specs)
    ]


def test_weighted_router_splits_by_weight_and_never_starves_a_pool():
    router = WeightedPoolRouter(_pools((1.0, 3.0, 0), (1.0, 1.0, 0)))
    replicas = [_replica(0, 0), _replica(1, 1)]
    picks = [router.choose(replicas, QUERY).pool for _ in range(400)]
    assert picks.count(0) == 300 and picks.count(1) == 100
    assert (
        max(len(run) for run in "".join(map(str, picks)).split("1")) <= 3
    )  # no pool waits long for its turn


def test_cheapest_first_fills_the_cheap_pool_then_spills():
    router = CheapestFirstRouter(_pools((11.06, 1.0, 0), (2.70, 1.0, 0)))
    cheap_idle = [_replica(0, 0), _replica(1, 1, outstanding=2)]
    assert router.choose(cheap_idle, QUERY).pool == 1  # headroom: nothing waiting, 2 < max_num_seqs 4
    cheap_queued = [_replica(0, 0), _replica(1, 1, outstanding=3, waiting=1)]
    assert router.choose(cheap_queued, QUERY).pool == 0
    cheap_full = [_replica(0, 0), _replica(1, 1, outstanding=4)]
    assert router.choose(cheap_full, QUERY).pool == 0
    # no pool with headroom: the lowest outstanding / max_num_seqs
    both_busy = [_replica(0, 0, outstanding=8, waiting=4), _replica(1, 1, outstanding=5, waiting=1)]
    assert router.choose(both_busy, QUERY).pool == 1


def test_spill_over_goes_down_the_list_past_the_threshold():
    router = SpillOverRouter(_pools((1.0, 1.0, 2), (1.0, 1.0, 0)))
    assert router.choose([_replica(0, 0, 5, waiting=2), _replica(1, 1)], QUERY).pool == 0
    assert router.choose([_replica(0, 0, 6, waiting=3), _replica(1, 1)], QUERY).pool == 1
    assert router.choose([_replica(0, 0, 9, waiting=3), _replica(1, 1, 9, waiting=4)], QUERY).pool == 0


STEP_S = 0.01


def _two_pools(tmp_path, rows, **extra):
    trace = write_trace(tmp_path / "t.csv", rows)
    data = trace_scenario(trace, step_s=STEP_S, engine={"max_num_seqs": 1, "max_num_batched_tokens": 64})
    data["fleet"] = {"router": "cheapest_first"}
    data["pools"] = {
        "cheap": {"fleet.usd_per_chip_hour": 1.0},
        "dear": {"fleet.usd_per_chip_hour": 4.0, "fleet.replicas": 2},
    }
    data.update(extra)
    return data


def test_a_full_pool_spills_over_and_each_request_is_timed_where_it_ran(tmp_path):
    # three requests at once, 32-token prompts, 3 output tokens: each replica runs one at a time (max_num_seqs
    # 1), so the cheap pool's replica takes the first and the two others go to the dear pool's two replicas;
    # each then takes 1 prefill step + 2 decode steps
    result = simulate_dict(_two_pools(tmp_path, [(0.0, 32, 3)] * 3))
    pools = {p["pool"]: p for p in result.fleet_log["pools"]}
    assert pools["cheap"]["completed"] == 1 and pools["dear"]["completed"] == 2
    assert result.table["e2e_s"].tolist() == pytest.approx([3 * STEP_S] * 3)
    assert [life["pool"] for life in result.fleet_log["lives"]] == ["cheap", "dear", "dear"]
    assert sorted(result.table["replica"]) == [0, 1, 2]


def test_no_request_is_lost_between_pools_and_cost_adds_up_per_pool(tmp_path):
    rows = [(0.05 * k, 32, 3 + k % 7) for k in range(120)]
    result = simulate_dict(_two_pools(tmp_path, rows))
    s, log = result.summary, result.fleet_log
    assert s["completed"] + s["failures"] == s["total_requested"] == 120
    assert sum(p["completed"] for p in log["pools"]) == s["completed"]
    cost = fleet_cost(log, 1, None, s["good_requests"])
    expected = sum(p["replica_seconds"] / 3600 * p["usd_per_chip_hour"] for p in log["pools"])
    assert cost.cost_usd == pytest.approx(expected)
    assert {p["pool"] for p in log["pools"]} == {"cheap", "dear"}


def test_event_skipping_and_the_reference_path_agree_with_pools():
    data = scenario_dict(
        fleet={"router": "weighted"},
        pools={"a": {"fleet.pool_weight": 2.0}, "b": {"hardware": "a100-80g", "fleet.replicas": 2}},
    )
    resolved = resolve(load_scenario_dict(data))
    fast = run_simulation(resolved, event_skipping=True)
    reference = run_simulation(resolved, event_skipping=False)
    assert fast.summary == reference.summary
    assert fast.fleet_log["pools"] == reference.fleet_log["pools"]
    assert "a: kernel tables" in resolved.step_times and "b:" in resolved.step_times


@pytest.mark.parametrize(
    "pools, message",
    [
        ({"a": {"workload.arrivals.rate": 3}}, "whole fleet shares"),
        ({"a": {"fleet.router": "round_robin"}}, "whole fleet shares"),
        ({"a": {"hardware": "no-such-chip"}}, "pool 'a'"),
        ({"a": {"fleet.replicas": 0}}, "pool 'a'"),
        ({"bad name": {}}, "pool name"),
    ],
)
def test_bad_pools_exit_2_with_one_line(tmp_path, pools, message):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario_dict(pools=pools)))
    result = CliRunner().invoke(simulate_main, [str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_spill_over_on_predicted_ttft(tmp_path):
    # constant 10 ms steps of at most 64 tokens: the base pool prefills 6,400 tokens/s, so a 10 ms TTFT bound
    # admits a request while the tokens queued there, its own included, are at most 64
    trace = write_trace(tmp_path / "t.csv", [(0.0, 40, 2)] * 3)
    data = trace_scenario(trace, step_s=STEP_S, engine={"max_num_seqs": 4, "max_num_batched_tokens": 64})
    data["fleet"] = {"router": "spill_over"}
    data["pools"] = {"base": {"fleet.spill_ttft_ms": 10}, "burst": {"fleet.replicas": 2}}
    result = simulate_dict(data)
    pools = {p["pool"]: p["completed"] for p in result.fleet_log["pools"]}
    assert pools == {"base": 1, "burst": 2}  # 40 tokens fit the bound; 80 would not


def test_pending_prefill_tokens_follow_admission_chunks_and_preemption():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from sim.replica.request import RequestState
    from sim.replica.scheduler import Scheduler, SchedulerConfig
    from tests.helpers import drive

    @settings(max_examples=30, deadline=None)
    @given(prompts=st.lists(st.integers(1, 200), min_size=1, max_size=20), outputs=st.integers(1, 30))
    def story(prompts, outputs):
        scheduler = Scheduler(
            SchedulerConfig(max_num_seqs=4, max_num_batched_tokens=48, block_size=8, num_blocks=40)
        )
        requests = [RequestState(i, 0.001 * i, p, outputs) for i, p in enumerate(prompts)]
        drive(scheduler, requests, STEP_S)  # check_invariants recounts pending_prefill_tokens every step
        assert scheduler.pending_prefill_tokens == 0

    story()
