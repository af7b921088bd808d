"""Closed forms from queueing theory that the simulator must reproduce."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import scenario_dict, simulate_dict


def test_md1_mean_wait():
    # max_num_seqs=1, one-token outputs, constant 10 ms step: each request is one deterministic service of
    # s = 10 ms, so with Poisson arrivals the replica is an M/D/1 queue: Wq = rho s / (2 (1 - rho)).
    step_s, rate = 0.01, 60.0
    rho = rate * step_s
    data = scenario_dict(
        engine={"max_num_seqs": 1, "max_num_batched_tokens": 64, "max_model_len": 8192},
        workload={"lengths": {"kind": "fixed", "input_len": 16, "output_len": 1}, "arrivals": {"rate": rate}},
        cost_model={"kind": "constant", "step_s": step_s},
        num_requests=60_000,
        seed=3,
    )
    res = simulate_dict(data)
    wait = res.table["ttft_s"].to_numpy() - step_s  # TTFT = queueing wait + one service
    expected = rho * step_s / (2 * (1 - rho))
    assert wait.mean() == pytest.approx(expected, rel=0.05)
    assert res.summary["failures"] == 0


def test_littles_law_on_the_time_series():
    # The replica's sampled waiting+running counts (state) against lambda x W from request timestamps.
    data = scenario_dict(
        workload={"lengths": {"kind": "sharegpt_like"}, "arrivals": {"rate": 20}},
        duration_s=120,
        num_requests=None,
        metrics={"window_s": 0.1},
    )
    res = simulate_dict(data)
    ts = res.timeseries.dropna(subset=["waiting"])
    sampled_l = float((ts["waiting"] + ts["running"]).mean())
    duration = res.summary["duration_s"]
    lam_w = res.table["e2e_s"].sum() / duration  # lambda x W = (n / T) x mean(E2E)
    assert sampled_l == pytest.approx(lam_w, rel=0.05)
    assert sampled_l > 5  # a real queue, not an idle system


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gamma_arrivals_mean_and_cv(burstiness):
    from sim.traffic.arrivals import arrival_times
    from sim.traffic.spec import ArrivalSpec

    spec = ArrivalSpec(process="gamma", rate=50.0, burstiness=burstiness)
    times = arrival_times(spec, np.random.default_rng(7), num_requests=200_000, duration_s=None)
    gaps = np.diff(np.concatenate([[0.0], times]))  # the first request waits one gap too
    assert gaps.mean() == pytest.approx(1 / 50.0, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / np.sqrt(burstiness), rel=0.03)


def test_arrival_stream_matches_the_harness_draw():
    # The harness: np.random.default_rng(seed).gamma(shape=b, scale=1/(rate*b)), cumulated.
    from sim.traffic.arrivals import arrival_times
    from sim.traffic.spec import ArrivalSpec

    spec = ArrivalSpec(process="gamma", rate=4.0, burstiness=0.5)
    ours = arrival_times(spec, np.random.default_rng(0), num_requests=500, duration_s=None)
    harness = np.cumsum(np.random.default_rng(0).gamma(shape=0.5, scale=1 / (4.0 * 0.5), size=500))
    np.testing.assert_allclose(ours, harness, rtol=1e-12)
