"""Automatic prefix caching (sim/replica/kv_cache.py, sim/replica/scheduler.py): hand-computed hit stories,
eviction order, shared blocks, invariants under random traffic, and the workload generators' identity."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.replica.kv_cache import KVBlockPool
from sim.replica.request import RequestState
from sim.replica.scheduler import Scheduler, SchedulerConfig
from sim.traffic.identity import block_hashes
from tests.helpers import drive, simulate_dict, trace_scenario, write_trace

BS = 16


def _scheduler(num_blocks: int = 64, budget: int = 512, seqs: int = 8) -> Scheduler:
    return Scheduler(SchedulerConfig(seqs, budget, BS, num_blocks, True, enable_prefix_caching=True))


def _request(i: int, arrival: float, pieces, output: int) -> RequestState:
    prompt = sum(length for _, _, length in pieces)
    req = RequestState(i, arrival, prompt, output)
    req.block_hashes = block_hashes([*pieces, (1000 + i, 0, output)], BS)
    return req


def test_a_shared_prefix_of_three_full_blocks_and_a_partial_one_hits_three_blocks():
    """A and B share their first 53 tokens (3 full blocks + 5); B continues differently. B, admitted after
    A finished, finds 48 tokens cached and computes its other 22; the partial block never hits."""
    sched = _scheduler()
    a = _request(0, 0.0, [(1, 0, 53), (2, 0, 10)], 4)  # 63 tokens
    b = _request(1, 1.0, [(1, 0, 53), (3, 0, 17)], 4)  # 70 tokens
    drive(sched, [a, b], step_s=0.01)
    assert a.num_cached_tokens == 0 and b.num_cached_tokens == 48
    assert sched.kv.hit_blocks == 3
    assert b.finished and b.num_output_tokens == 4


def test_a_full_hit_still_computes_the_last_block():
    """Prompt = exactly 3 cached blocks: vLLM computes at least one token, so only 2 blocks (32 tokens) hit."""
    sched = _scheduler()
    a = _request(0, 0.0, [(1, 0, 48)], 2)
    b = _request(1, 1.0, [(1, 0, 48)], 2)
    drive(sched, [a, b], step_s=0.01)
    assert b.num_cached_tokens == 32


def test_cached_tokens_do_not_use_the_token_budget():
    """Budget 40: B's 64-token prompt with 48 cached computes its 16 new tokens in one step."""
    sched = _scheduler(budget=40)
    a = _request(0, 0.0, [(1, 0, 48), (2, 0, 1)], 1)
    drive(sched, [a], step_s=0.01)
    b = _request(1, 1.0, [(1, 0, 48), (3, 0, 16)], 1)
    sched.add_request(b)
    plan = sched.schedule()
    assert plan.prefill_tokens == (16,) and b.num_computed_tokens == 48
    assert plan.batch.prefill_context_tokens == (64,)  # the chunk attends over the cached prefix


def test_eviction_takes_never_cached_blocks_first_then_the_least_recently_freed():
    pool = KVBlockPool(6)
    assert pool.allocate(4)
    for h in (10, 11):  # a request's two full blocks become cached ...
        pool.cache(h)
    pool.free(2)  # ... its other two were plain; then it ends: the cached ones become evictable
    pool.release_cached([10, 11])  # released tail first: 11, then 10 -> LRU order 11, 10
    assert pool.num_free_blocks == 6 and list(pool.evictable) == [11, 10]
    assert pool.allocate(4)  # the 4 plain free blocks: nothing evicted
    assert pool.evictions == 0 and pool.longest_hit([10, 11], 2) == 2
    assert pool.allocate(1)  # now the least recently freed cached block goes: 11 (the request's tail)
    assert pool.evictions == 1 and 11 not in pool.refs and pool.longest_hit([10], 1) == 1
    pool.check()


def test_blocks_held_by_a_running_request_are_never_evicted():
    pool = KVBlockPool(3)
    assert pool.allocate(2)
    pool.cache(7)  # held (reference 1) by a running request
    assert not pool.allocate(2)  # one free block only: the held cached block is not evictable
    pool.take_cached([7])  # a second request shares it
    assert pool.refs[7] == 2 and pool.num_free_blocks == 1
    pool.release_cached([7])
    assert pool.refs[7] == 1 and 7 not in pool.evictable
    pool.check()


@settings(max_examples=40, deadline=None)
@given(
    prompts=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 120), st.integers(1, 20), st.integers(1, 30)),
        min_size=2,
        max_size=30,
    ),
    num_blocks=st.integers(12, 60),
)
def test_invariants_under_random_shared_prefixes(prompts, num_blocks):
    """References never negative, no block both free and referenced, counts agree after every step
    (check_invariants), cached + computed = prompt for every request, and every request finishes."""
    sched = _scheduler(num_blocks=num_blocks, budget=64, seqs=4)
    reqs = []
    for i, (tenant, shared, own, output) in enumerate(prompts):
        pieces = [(100 + tenant, 0, shared), (200 + i, 0, own)]
        if (shared + own + output + BS - 1) // BS > num_blocks:
            continue
        reqs.append(_request(i, i * 0.003, pieces, output))
    drive(sched, reqs, step_s=0.01)
    for req in reqs:
        assert req.finished and 0 <= req.num_cached_tokens < req.num_prompt_tokens
        assert req.num_cached_tokens % BS == 0
    assert sched.kv.num_free_blocks == sched.kv.num_blocks  # everything given back (cached or free)
    sched.kv.check()


def test_conversations_wait_for_the_previous_answer_and_hit_their_history(tmp_path):
    """Two turns, constant 10 ms steps, no think time: turn 2 is sent when turn 1 ends and finds turn 1's
    prompt and answer cached (its full blocks)."""
    trace = write_trace(tmp_path / "t.csv", [(0.0, 1, 1)])
    data = trace_scenario(trace, step_s=0.01)
    data["workload"] = {
        "lengths": {"kind": "fixed", "input_len": 40, "output_len": 25},
        "arrivals": {"rate": 1},
        "conversations": {"turns": 2, "turns_distribution": "fixed", "think_time_s": 0},
    }
    data["num_requests"] = 2
    result = simulate_dict(data)
    first, second = result.table.sort_values("req_id").to_dict("records")
    assert second["arrival_s"] == pytest.approx(first["end_s"])  # sent as the first answer ended
    assert second["prompt_tokens"] == 40 + 25 + 40
    assert second["cached_tokens"] == (40 + 25) // BS * BS  # the history's full blocks
    assert result.summary["prefix_cache_hit_rate"] == pytest.approx(64 / (40 + 105))
    data["engine"]["enable_prefix_caching"] = False
    assert simulate_dict(data).summary["prefix_cache_hit_rate"] == 0.0


def test_a_failed_turn_ends_its_conversation(tmp_path):
    trace = write_trace(tmp_path / "t.csv", [(0.0, 1, 1)])
    data = trace_scenario(trace, step_s=0.01)
    data["engine"]["max_model_len"] = 100  # turn 2 (40 + 50 + 40 = 130 tokens) is too long
    data["workload"] = {
        "lengths": {"kind": "fixed", "input_len": 40, "output_len": 50},
        "arrivals": {"rate": 1},
        "conversations": {"turns": 3, "turns_distribution": "fixed", "think_time_s": 1},
    }
    data["num_requests"] = 3
    table = simulate_dict(data).table.sort_values("req_id")
    assert table["success"].tolist() == [True, False, False]
    assert "an earlier turn" in table["error"].iloc[2]


def test_blocks_evicted_to_the_host_tier_load_back_instead_of_recomputing():
    """6 device blocks: A (3 full blocks + 1) ends, B (6 new blocks) evicts A's cached blocks into the host
    tier; C repeats A's prefix and finds it there: 48 cached tokens, and the step that admits it is longer
    by 3 x the block load time."""
    config = SchedulerConfig(
        4, 512, BS, 6, True, enable_prefix_caching=True, offload_blocks=8, load_s_per_block=0.5
    )
    sched = Scheduler(config)
    a = _request(0, 0.0, [(1, 0, 49)], 1)
    b = _request(1, 1.0, [(2, 0, 96)], 1)
    drive(sched, [a, b], step_s=0.01)
    assert sched.kv.evictions >= 3 and sched.kv.longest_hit(a.block_hashes, 3) < 3
    c = _request(2, 2.0, [(1, 0, 49)], 1)
    sched.add_request(c)
    plan = sched.schedule()
    assert c.num_cached_tokens == 48 and plan.loaded_blocks == 3 and plan.prefill_tokens == (1,)
    assert sched.kv.cpu_hit_blocks == 3
    sched.kv.check()
