"""The vLLM V1 scheduling rules, one story each, with exact expected timelines."""

from __future__ import annotations

import pytest

from sim.replica.request import RequestState, Status
from sim.replica.scheduler import Scheduler, SchedulerConfig
from tests.helpers import drive, simulate_dict, trace_scenario, write_trace


def make(max_num_seqs=8, budget=64, block_size=4, num_blocks=100, chunked=True) -> Scheduler:
    return Scheduler(SchedulerConfig(max_num_seqs, budget, block_size, num_blocks, chunked))


def test_three_request_timeline_by_hand(tmp_path):
    # step 10 ms. R0 @0 (10 prompt, 3 out), R1 @5 ms (10, 2), R2 @25 ms (10, 1).
    # step0 [0,10]: R0 prefill -> token 1 @10.     step1 [10,20]: R0 decode @20, R1 prefill @20.
    # step2 [20,30]: R0 @30 (done), R1 @30 (done). step3 [30,40]: R2 prefill @40 (done).
    trace = write_trace(tmp_path / "t.csv", [(0.0, 10, 3), (0.005, 10, 2), (0.025, 10, 1)])
    res = simulate_dict(trace_scenario(trace, step_s=0.01, slo={"ttft_ms": 12, "tpot_ms": 50}))
    t = res.table.set_index("req_id")
    assert t["ttft_s"].tolist() == pytest.approx([0.010, 0.015, 0.015])
    assert t["e2e_s"].tolist() == pytest.approx([0.030, 0.025, 0.015])
    # TPOT = (E2E - TTFT) / max(1, out - 1): R0 20/2, R1 10/1, R2 0/1
    assert t["tpot_s"].tolist() == pytest.approx([0.010, 0.010, 0.0])
    s = res.summary
    assert s["duration_s"] == pytest.approx(0.040)
    assert s["itl_ms_mean"] == pytest.approx(10.0)  # pooled: R0 [10, 10], R1 [10]
    assert s["itl_ms_max"] == pytest.approx(10.0)
    # Only R0 meets TTFT <= 12 ms: goodput 1 / 0.04 s, attainment 1/3.
    assert s["goodput_rps"] == pytest.approx(25.0)
    assert s["slo_attainment"] == pytest.approx(1 / 3)
    assert s["output_throughput_tok_s"] == pytest.approx(6 / 0.040)
    assert s["completed"] == 3 and s["failures"] == 0


def test_chunked_prefill_of_a_prompt_longer_than_the_budget(tmp_path):
    # 100-token prompt, budget 32: chunks 32, 32, 32, 4; the first token ends the 4th step.
    trace = write_trace(tmp_path / "t.csv", [(0.0, 100, 2)])
    res = simulate_dict(
        trace_scenario(trace, step_s=0.01, engine={"max_num_batched_tokens": 32, "max_num_seqs": 4})
    )
    assert res.table["ttft_s"].iloc[0] == pytest.approx(0.04)
    assert res.table["e2e_s"].iloc[0] == pytest.approx(0.05)
    assert res.num_steps == 5


def test_chunk_sizes_and_decodes_go_first():
    sched = make(budget=32)
    long_req = RequestState(0, 0.0, 100, 3)
    sched.add_request(long_req)
    sizes = []
    for _ in range(4):
        plan = sched.schedule()
        sizes.append(plan.prefill_tokens)
        sched.update_from_step(plan, 0.0)
    assert sizes == [(32,), (32,), (32,), (4,)]
    # Now decoding; a new prompt arrives: the decode takes 1 token of the budget, the prompt the rest.
    sched.add_request(RequestState(1, 0.0, 50, 2))
    plan = sched.schedule()
    assert plan.batch.num_decode_seqs == 1
    assert plan.prefill_tokens == (31,)
    assert plan.batch.decode_context_tokens == 101  # 100 prompt + 1 generated, the new token included


def test_max_num_seqs_caps_admission():
    sched = make(max_num_seqs=2, budget=64)
    for i in range(3):
        sched.add_request(RequestState(i, 0.0, 4, 5))
    plan = sched.schedule()
    assert [r.req_id for r in plan.prefill_reqs] == [0, 1]
    assert sched.num_waiting == 1


def test_no_chunking_when_chunked_prefill_is_off():
    sched = make(budget=16, chunked=False)
    sched.add_request(RequestState(0, 0.0, 10, 2))
    sched.add_request(RequestState(1, 0.0, 10, 2))  # does not fit the 6 tokens left: waits, not chunked
    plan = sched.schedule()
    assert plan.prefill_tokens == (10,)


def test_preemption_by_recompute_when_kv_runs_out():
    # block 4, 6 blocks = 24 token slots. A: 8-token prompt, 12 out; B: 8-token prompt, 12 out.
    # Both admitted (2 + 2 blocks). They grow one token per step; when a new block is needed and none is
    # free, B (admitted last) is preempted, freed, and goes back to the front of the waiting queue.
    sched = make(max_num_seqs=4, budget=32, block_size=4, num_blocks=6)
    a, b = RequestState(0, 0.0, 8, 12), RequestState(1, 0.0, 8, 12)
    end = drive(sched, [a, b], step_s=1.0)
    assert a.num_preemptions == 0
    assert b.num_preemptions >= 1
    assert b.num_recomputed_tokens > 0
    assert a.end_s < b.end_s
    assert a.status == b.status == Status.FINISHED
    # Token accounting: every token but the last output of each request is computed once, plus recomputes.
    assert sched.num_computed_tokens_total == (8 + 12 - 1) * 2 + b.num_recomputed_tokens
    assert end == b.end_s


def test_preempted_request_goes_to_the_front_and_blocks_admission_that_step():
    # block 4, 5 blocks. A, B: 4-token prompts (1 block each). Step 1: both decode at context 5 and need
    # their 2nd block (4 used); C (4-token prompt) is admitted into the last block. Step 2: C decodes at
    # context 5 and needs a 2nd block, none is free: C, the last admitted, is preempted by recompute.
    sched = make(max_num_seqs=4, budget=32, block_size=4, num_blocks=5)
    a, b, c = RequestState(0, 0.0, 4, 8), RequestState(1, 0.0, 4, 8), RequestState(2, 0.0, 4, 8)
    d = RequestState(3, 0.0, 4, 8)
    for r in (a, b):
        sched.add_request(r)
    sched.update_from_step(sched.schedule(), 1.0)
    sched.add_request(c)
    plan = sched.schedule()
    assert plan.prefill_reqs == (c,)
    sched.update_from_step(plan, 2.0)
    assert sched.kv.num_free_blocks == 0
    sched.add_request(d)
    plan = sched.schedule()
    assert plan.preempted == (c,)
    assert c.num_recomputed_tokens == 4 and c.num_computed_tokens == 0 and c.num_blocks == 0
    assert list(sched.waiting)[:2] == [c, d]  # C is back at the front, ahead of D
    assert plan.prefill_tokens == ()  # nothing admitted in a step that preempted
    assert plan.batch.num_decode_seqs == 2
    sched.update_from_step(plan, 3.0)
    sched.check_invariants()
