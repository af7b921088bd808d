"""Invariants of the scheduler under random workloads (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.replica.request import RequestState, Status
from sim.replica.scheduler import Scheduler, SchedulerConfig
from tests.helpers import drive


@st.composite
def workloads(draw):
    block_size = draw(st.sampled_from([1, 2, 4, 16]))
    max_num_seqs = draw(st.integers(1, 8))
    budget = draw(st.integers(max_num_seqs, 64))
    max_len = draw(st.integers(2, 80))
    min_blocks = -(-max_len // block_size)  # at least one max-length request fits
    num_blocks = draw(st.integers(min_blocks, min_blocks + 30))
    chunked = draw(st.booleans())
    if not chunked:
        budget = max(budget, max_len)
    n = draw(st.integers(1, 25))
    reqs = []
    for i in range(n):
        prompt = draw(st.integers(1, max_len - 1))
        out = draw(st.integers(1, max_len - prompt))
        arrival = draw(st.floats(0, 20, allow_nan=False))
        reqs.append(RequestState(i, arrival, prompt, out))
    return SchedulerConfig(max_num_seqs, budget, block_size, num_blocks, chunked), reqs


@settings(max_examples=300, deadline=None)
@given(workloads())
def test_kv_never_over_capacity_nothing_vanishes_and_tokens_add_up(case):
    config, reqs = case
    sched = Scheduler(config)
    drive(sched, reqs, step_s=1.0)  # checks KV <= capacity and every running sum after each step
    assert all(r.status == Status.FINISHED for r in reqs)
    assert all(r.num_output_tokens == r.max_output_tokens for r in reqs)
    assert sched.kv.num_free_blocks == config.num_blocks
    assert not sched.running and sched.num_waiting == 0
    expected = sum(r.num_prompt_tokens + r.max_output_tokens - 1 + r.num_recomputed_tokens for r in reqs)
    assert sched.num_computed_tokens_total == expected
    # Each request emits exactly its output tokens over its segments.
    for r in reqs:
        assert sum(last - first + 1 for first, last in r.segments) == r.max_output_tokens


@settings(max_examples=100, deadline=None)
@given(workloads(), st.data())
def test_aborts_free_everything(case, data):
    config, reqs = case
    sched = Scheduler(config)
    for r in reqs:
        sched.add_request(r)
    steps = data.draw(st.integers(0, 30))
    for _ in range(steps):
        if not sched.has_work():
            break
        sched.update_from_step(sched.schedule(), 0.0)
    for r in reqs:
        if r.status not in (Status.FINISHED, Status.FAILED):
            sched.abort(r, "timeout", 1.0)
    sched.check_invariants()
    assert sched.kv.num_free_blocks == config.num_blocks
    assert all(r.status in (Status.FINISHED, Status.FAILED) for r in reqs)
    assert not sched.has_work()
