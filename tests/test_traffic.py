"""Arrival shapes (spikes, schedules, diurnal), length distributions and traces."""

from __future__ import annotations

import numpy as np
import pytest

from sim.errors import InputError
from sim.traffic.arrivals import arrival_times, cumulative_rate, rate_at
from sim.traffic.spec import ArrivalSpec
from sim.traffic.trace import read_trace


def test_flash_spike_multiplies_the_rate_in_its_window():
    spec = ArrivalSpec(rate=10.0, spikes=[{"start_s": 100, "duration_s": 50, "multiplier": 10, "ramp_s": 10}])
    times = arrival_times(spec, np.random.default_rng(1), num_requests=None, duration_s=300)
    steady = np.sum(times < 80) / 80
    spike = np.sum((times >= 100) & (times <= 150)) / 50
    assert steady == pytest.approx(10, rel=0.15)
    assert spike == pytest.approx(100, rel=0.1)
    # Ramps are linear: halfway up the ramp the rate is 55 req/s.
    assert rate_at(spec, np.array([95.0]))[0] == pytest.approx(55.0)


def test_cumulative_rate_integrates_a_piecewise_schedule_exactly():
    spec = ArrivalSpec(rate=2.0, schedule=[{"at_s": 10, "rate": 6.0}, {"at_s": 20, "rate": 0.0}])
    grid, cum = cumulative_rate(spec, 30.0)
    assert cum[-1] == pytest.approx(2 * 10 + 6 * 10, rel=1e-6)
    times = arrival_times(spec, np.random.default_rng(2), num_requests=None, duration_s=30)
    assert not np.any((times > 20.001) & (times <= 30))  # rate 0 after t=20


def test_diurnal_peak_and_trough():
    spec = ArrivalSpec(rate=10.0, diurnal={"period_s": 1000, "amplitude": 0.5, "peak_at_s": 250})
    assert rate_at(spec, np.array([250.0, 750.0])).tolist() == pytest.approx([15.0, 5.0])


def test_constant_and_instant_arrivals():
    spec = ArrivalSpec(process="constant", rate=4.0)
    times = arrival_times(spec, np.random.default_rng(0), num_requests=4, duration_s=None)
    assert times.tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0])
    inst = arrival_times(ArrivalSpec(rate="inf"), np.random.default_rng(0), num_requests=3, duration_s=None)
    assert inst.tolist() == [0.0, 0.0, 0.0]


def test_duration_bound_and_count_bound_agree_on_the_stream():
    spec = ArrivalSpec(rate=20.0)
    by_time = arrival_times(spec, np.random.default_rng(5), num_requests=None, duration_s=50)
    by_count = arrival_times(spec, np.random.default_rng(5), num_requests=len(by_time), duration_s=None)
    np.testing.assert_allclose(by_time, by_count)


def test_random_lengths_stay_in_range():
    from sim.traffic.lengths import sample_lengths
    from sim.traffic.spec import RandomLengths

    spec = RandomLengths(kind="random", input_len=1000, output_len=100, range_ratio=0.2)
    prompt, output, _ = sample_lengths(spec, 10_000, np.random.default_rng(0), 0)
    assert prompt.min() >= 800 and prompt.max() <= 1200
    assert output.min() >= 80 and output.max() <= 120
    assert prompt.mean() == pytest.approx(1000, rel=0.01)


def test_sharegpt_like_means():
    from sim.traffic.lengths import sample_lengths
    from sim.traffic.spec import ShareGPTLikeLengths

    prompt, output, _ = sample_lengths(
        ShareGPTLikeLengths(kind="sharegpt_like"), 200_000, np.random.default_rng(0), 0
    )
    assert prompt.mean() == pytest.approx(220, rel=0.03)
    assert output.mean() == pytest.approx(280, rel=0.03)
    assert prompt.min() >= 4 and prompt.max() <= 8192


def test_sharegpt_file(tmp_path):
    from sim.traffic.lengths import sample_lengths
    from sim.traffic.spec import ShareGPTFileLengths

    data = [
        {"conversations": [{"from": "human", "value": "x" * 400}, {"from": "gpt", "value": "y" * 80}]},
        {
            "conversations": [
                {"from": "gpt", "value": "skipped: not a human turn"},
                {"from": "human", "value": "a"},
            ]
        },
        {
            "conversations": [
                {"from": "human", "value": "abc"},
                {"from": "gpt", "value": "too short a prompt"},
            ]
        },
    ]
    path = tmp_path / "sharegpt.json"
    path.write_text(__import__("json").dumps(data))
    spec = ShareGPTFileLengths(kind="sharegpt_file", path=str(path))
    prompt, output, note = sample_lengths(spec, 3, np.random.default_rng(0), 0)
    assert prompt.tolist() == [100, 100, 100] and output.tolist() == [20, 20, 20]
    assert "reused" in note


def test_trace_is_sorted_and_validated(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"arrival_s": 2.0, "input_tokens": 5, "output_tokens": 3}\n'
        '{"arrival_s": 1.0, "input_tokens": 7, "output_tokens": 1}\n'
    )
    arrival, prompt, output = read_trace(path)
    assert arrival.tolist() == [1.0, 2.0] and prompt.tolist() == [7, 5] and output.tolist() == [1, 3]
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival_s,input_tokens,output_tokens\n0.5,0,3\n")
    with pytest.raises(InputError, match="line 2: column input_tokens=0"):
        read_trace(bad)
    with pytest.raises(InputError, match="lacks column"):
        (tmp_path / "cols.csv").write_text("a,b\n1,2\n")
        read_trace(tmp_path / "cols.csv")
