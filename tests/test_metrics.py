"""Metric definitions: pooled ITL from step arrays equals the per-token list; percentiles equal numpy's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.metrics.itl import pooled_itl, request_itl
from sim.metrics.weighted import weighted_mean, weighted_percentiles
from tests.helpers import scenario_dict, simulate_dict


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e3, allow_nan=False), st.integers(0, 5)), min_size=1, max_size=30))
def test_weighted_percentiles_equal_numpy_on_the_expanded_list(pairs):
    values = np.array([p[0] for p in pairs])
    counts = np.array([p[1] for p in pairs])
    expanded = np.repeat(values, counts)
    qs = [0, 1, 50, 90, 95, 99, 100]
    got = weighted_percentiles(values, counts, qs)
    want = np.percentile(expanded, qs).tolist() if len(expanded) else [0.0] * len(qs)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-9)
    if len(expanded):
        assert weighted_mean(values, counts) == pytest.approx(expanded.mean())


def test_pooled_itl_matches_per_request_lists_with_preemption():
    # A tight KV cache forces preemptions, which split requests into several token segments.
    data = scenario_dict(
        engine={"num_gpu_blocks_override": 60, "block_size": 16, "max_model_len": 960, "max_num_seqs": 16},
        workload={
            "lengths": {"kind": "random", "input_len": 200, "output_len": 150, "range_ratio": 0.5},
            "arrivals": {"rate": 20},
        },
        num_requests=300,
    )
    res = simulate_dict(data)
    assert res.table["num_preemptions"].sum() > 0
    ok = [r for r, s in zip(res.requests, res.table["success"], strict=True) if s]
    per_request = [request_itl(r.segments, res.step_end_s[r.replica_id]) for r in ok]
    flat = np.concatenate([np.asarray(x) for x in per_request if x])
    assert len(flat) == sum(r.num_output_tokens - 1 for r in ok)
    values, counts = pooled_itl([(r.replica_id, r.segments) for r in ok], res.step_end_s)
    assert counts.sum() == len(flat)
    qs = [50, 90, 99]
    assert weighted_percentiles(values, counts, qs) == pytest.approx(np.percentile(flat, qs).tolist())
    assert res.summary["itl_ms_mean"] == pytest.approx(flat.mean() * 1e3)
    # TPOT of each request is the mean of its own ITLs.
    tpot = res.table.loc[res.table["success"], "tpot_s"].to_numpy()
    np.testing.assert_allclose(tpot, [np.mean(x) if x else 0.0 for x in per_request], rtol=1e-9, atol=1e-12)


def test_timeouts_fail_requests_and_free_the_replica():
    # 30 s of requests at a rate far above capacity, 5 s client timeout: late requests fail as "timeout".
    data = scenario_dict(
        workload={
            "lengths": {"kind": "fixed", "input_len": 2000, "output_len": 100},
            "arrivals": {"rate": 100},
            "request_timeout_s": 5,
        },
        engine={"max_model_len": 8192, "max_num_seqs": 64},
        num_requests=3000,
    )
    res = simulate_dict(data)
    t = res.table
    assert (t["error"] == "timeout").sum() > 0
    assert set(t.loc[~t["success"], "error"]) == {"timeout"}
    assert t["success"].sum() > 20  # FCFS under overload: most admitted requests are already late
    assert t.loc[t["success"], "e2e_s"].max() <= 5.0
    assert res.summary["failures"] + res.summary["completed"] == 3000


def test_prompt_longer_than_max_model_len_fails_and_outputs_are_capped(tmp_path):
    from tests.helpers import trace_scenario, write_trace

    trace = write_trace(tmp_path / "t.csv", [(0.0, 600, 10), (0.1, 500, 100)])
    res = simulate_dict(
        trace_scenario(
            trace,
            step_s=0.01,
            engine={"max_model_len": 512, "max_num_seqs": 4, "max_num_batched_tokens": 512},
        )
    )
    t = res.table
    assert t["error"].tolist() == ["prompt longer than max_model_len", ""]
    assert t["output_tokens"].tolist() == [0, 12]  # capped at max_model_len - prompt
