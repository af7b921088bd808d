"""Speculative decoding: closed forms at acceptance 1 and 0, the acceptance process's mean, the verify step's
work and TPU bucket, KV freed under preemption, and the combinations that must exit 2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.cli import main as simulate_main
from sim.cost.base import StepBatch
from sim.loader import load_scenario_dict
from sim.replica.acceptance import SpeculativeDecoding
from sim.replica.request import RequestState, Status
from sim.replica.scheduler import SchedulerConfig
from sim.replica.schedulers import make_scheduler
from sim.resolve import resolve
from sim.run import run_simulation
from tests.helpers import drive, scenario_dict, simulate_dict, trace_scenario, write_trace

STEP_S = 0.01


def _one_request(tmp_path, output_len: int, speculative: dict | None):
    trace = write_trace(tmp_path / "t.csv", [(0.0, 64, output_len)])
    engine = {"speculative": speculative} if speculative else {}
    return simulate_dict(trace_scenario(trace, step_s=STEP_S, engine=engine))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_all_accepted_emits_k_plus_one_tokens_a_step(tmp_path, k):
    # prefill: one step, first token; then ceil((N - 1) / (k + 1)) verify steps emit the other N - 1
    n = 40
    spec = {"method": "ngram", "num_speculative_tokens": k, "acceptance_rate": 1.0}
    record = _one_request(tmp_path, n, spec).table.iloc[0]
    steps = 1 + math.ceil((n - 1) / (k + 1))
    assert record["e2e_s"] == pytest.approx(steps * STEP_S)
    assert record["ttft_s"] == pytest.approx(STEP_S)
    assert record["output_tokens"] == n


def test_nothing_accepted_is_plain_decoding_at_the_same_step_time(tmp_path):
    n = 25
    plain = _one_request(tmp_path, n, None).table.iloc[0]
    spec = {"method": "ngram", "num_speculative_tokens": 4, "acceptance_rate": 0.0}
    rejected = _one_request(tmp_path, n, spec).table.iloc[0]
    assert rejected["e2e_s"] == pytest.approx(plain["e2e_s"]) == pytest.approx(n * STEP_S)


def test_the_acceptance_process_has_its_closed_form_mean():
    spec = SpeculativeDecoding(3, (0.8, 0.5, 0.5))
    assert spec.mean_tokens_per_step == pytest.approx(1 + 0.8 + 0.4 + 0.2)
    emitted = spec.draw_emitted(np.random.default_rng(0), 200_000)
    steps = len(emitted) - 1
    assert 200_000 / steps == pytest.approx(spec.mean_tokens_per_step, rel=0.01)
    assert emitted[0] == 0 and emitted[-1] == 200_000
    assert all(1 <= b - a <= 4 for a, b in zip(emitted, emitted[1:], strict=False))


def test_a_verify_step_is_a_causal_block_of_k_plus_one_queries():
    # 2 sequences with 100 and 50 computed tokens verify 1 + 3 tokens each: contexts 104 and 54
    batch = StepBatch(2, 104 + 54, (), (), 2, decode_query_tokens=4)
    tokens, pairs, kv = batch.work()
    assert tokens == 8 and batch.num_tokens == 8 and kv == 158
    assert pairs == sum(4 * c - 6 for c in (104, 54))  # queries at 101..104 attend 101+102+103+104 keys


def test_on_tpu_the_verify_step_is_padded_to_its_token_bucket():
    data = scenario_dict(
        hardware="tpu-v6e",
        profile="none",
        engine={"max_model_len": 4096, "speculative": {"method": "eagle", "num_speculative_tokens": 3}},
    )
    resolved = resolve(load_scenario_dict(data))
    runtime = resolved.runtime
    assert runtime is not None
    model = runtime.build(resolved.build_step_model(), 0, 0)
    cost = model.step_cost(StepBatch(10, 10 * 600, (), (), 10, decode_query_tokens=4))
    assert cost.num_tokens == 40 and cost.padding_tokens == 24  # 40 verify tokens run at bucket 64


def test_eagle_adds_its_drafter_time_and_cuts_tpot_at_low_load():
    base = scenario_dict(
        workload={"lengths": {"kind": "fixed", "input_len": 256, "output_len": 128}, "arrivals": {"rate": 2}},
        num_requests=40,
    )
    plain = simulate_dict(base)
    spec = simulate_dict(
        {
            **base,
            "engine": {**base["engine"], "speculative": {"method": "eagle", "num_speculative_tokens": 3}},
        }
    )
    proposer = sum(s.totals["proposer_s"] for s in spec.replica_stats)
    assert proposer > 0
    assert spec.summary["tpot_ms_mean"] < 0.75 * plain.summary["tpot_ms_mean"]
    assert spec.summary["completed"] == plain.summary["completed"] == 40


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 5),
    rate=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
    outputs=st.lists(st.integers(1, 60), min_size=1, max_size=25),
)
def test_no_token_or_block_is_lost_under_preemption(k, rate, seed, outputs):
    # a small KV cache forces preemptions; every request ends with all its tokens and every block comes back
    config = SchedulerConfig(
        max_num_seqs=8,
        max_num_batched_tokens=64,
        block_size=4,
        num_blocks=48,
        speculative=SpeculativeDecoding(k, (rate,) * k, seed),
    )
    scheduler = make_scheduler(config)
    requests = [RequestState(i, 0.01 * i, 20, n) for i, n in enumerate(outputs)]
    drive(scheduler, requests, STEP_S)
    assert all(r.status == Status.FINISHED and r.num_output_tokens == r.max_output_tokens for r in requests)
    assert scheduler.kv.num_used_blocks == 0


def test_event_skipping_and_the_reference_path_agree(tmp_path):
    data = scenario_dict(
        engine={"max_model_len": 8192, "speculative": {"method": "eagle", "num_speculative_tokens": 2}},
        fleet={"replicas": 2},
    )
    resolved = resolve(load_scenario_dict(data))
    fast = run_simulation(resolved, event_skipping=True)
    reference = run_simulation(resolved, event_skipping=False)
    assert fast.summary == reference.summary


@pytest.mark.parametrize(
    "speculative, field",
    [
        ({"method": "ngram", "num_speculative_tokens": 0, "acceptance_rate": 0.5}, "num_speculative_tokens"),
        ({"method": "ngram", "num_speculative_tokens": 3}, "acceptance_rate"),
        ({"method": "eagle", "num_speculative_tokens": 2, "acceptance_rate": [0.5]}, "speculative"),
        ({"method": "draft_model", "num_speculative_tokens": 2, "acceptance_rate": 0.5}, "speculative"),
        (
            {
                "method": "draft_model",
                "num_speculative_tokens": 2,
                "acceptance_rate": 0.5,
                "draft_model": "x",
            },
            "draft_model",
        ),
        ({"method": "eagle", "num_speculative_tokens": 16}, "num_speculative_tokens"),  # 256 x 17 > budget
    ],
)
def test_bad_combinations_exit_2_naming_the_field(tmp_path, speculative, field):
    data = scenario_dict(engine={"max_model_len": 8192, "speculative": speculative})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(simulate_main, [str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert field in result.output and "Traceback" not in result.output
