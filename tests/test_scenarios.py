"""Every scenario shipped under scenarios/ runs, and runs deterministically."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sim.cli import main
from sim.loader import load_scenario
from sim.resolve import resolve
from sim.risk.study import run_study
from sim.run import run_simulation
from sim.sweep import run_sweep

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").rglob("*.yaml"))


def test_scenarios_exist():
    names = {p.name for p in SCENARIOS}
    assert {"flash_spike.yaml", "steady_8b_h100.yaml", "failover.yaml", "diurnal_autoscale.yaml"} <= names


# Long scenarios are shortened here (a day of traffic is a benchmark, not a unit test); runs = 1 each.
SHORTER = {
    "diurnal_autoscale": ["duration_s=7200"],
    "speculative_8b": ["num_requests=400"],
    "disaggregated_70b": ["num_requests=300"],
    "hybrid_spike": ["duration_s=240"],
}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_runs(path):
    overrides = SHORTER.get(path.stem, [])
    scenario = load_scenario(path, overrides)
    if scenario.variants or scenario.monte_carlo.runs > 1:
        study = run_study(path, overrides, runs=1, jobs=1)
        assert len(study.digests) == max(1, len(scenario.variants))
        for d in study.digests:
            assert math.isfinite(d.metrics["goodput_rps"]) and d.metrics["goodput_rps"] > 0
            assert d.series.arrived.sum() > 0
        return
    elif scenario.sweep is not None:
        sweep = run_sweep(path)
        summaries = [o.summary for o in sweep.outcomes if o.summary is not None]
        assert summaries, "no point of the sweep could run"
    else:
        summaries = [run_simulation(resolve(scenario)).summary]
    for s in summaries:
        assert s["completed"] > 0
        assert s["completed"] + s["failures"] == s["total_requested"]


def test_flash_spike_headline_gpu_absorbs_what_tpu_cold_starts_cannot():
    """The headline scenario's story, asserted: the autoscaler asks for replicas as the spike lands; they
    serve only after their cold start (RTX PRO 6000 < v6e warm cache < v6e cold cache; v5e-2 later than the
    GPU too); the GPU fleet keeps many times the TPU fleets' attainment through the spike at the lowest
    cost per good request, and the TPU fleets breach the objective for minutes."""
    study = run_study(Path("scenarios/flash_spike.yaml"), runs=1, jobs=1)
    by = {d.label: d for d in study.digests}
    gpu, warm, cold = by["gpu_rtx_pro_6000"], by["tpu_v6e_warm_cache"], by["tpu_v6e_cold_cache"]
    v5e = by["tpu_v5e_2chips"]
    assert gpu.time_to_ready_s < warm.time_to_ready_s < cold.time_to_ready_s
    assert gpu.time_to_ready_s < v5e.time_to_ready_s
    for d in (gpu, warm, cold, v5e):
        w = d.series_window_s
        first_scale = np.argmax(d.desired_replicas > 2) * w
        first_ready = np.argmax(d.ready_replicas > 2) * w
        assert 120 <= first_scale < 180  # reacts to the spike within a few decision intervals
        assert (
            first_ready - first_scale >= d.time_to_ready_s - 2 * w
        )  # ... but capacity comes a cold start later
    for tpu in (warm, cold, v5e):
        assert tpu.breached and tpu.metrics["spike_attainment"] < 0.2
        assert gpu.metrics["spike_attainment"] > 5 * tpu.metrics["spike_attainment"]
        assert gpu.metrics["usd_per_1m_good_requests"] < tpu.metrics["usd_per_1m_good_requests"]
    assert cold.metrics["time_to_recover_s"] >= warm.metrics["time_to_recover_s"]


def test_same_seed_gives_byte_identical_summary(tmp_path):
    runner = CliRunner()
    outputs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        r = runner.invoke(
            main, ["scenarios/steady_8b_h100.yaml", "--out", str(out), "--no-plot", "--set", "duration_s=60"]
        )
        assert r.exit_code == 0, r.output
        outputs.append(
            (
                (out / "summary.json").read_bytes(),
                (out / "requests.csv").read_bytes(),
                (out / "timeseries.csv").read_bytes(),
            )
        )
    assert outputs[0] == outputs[1]
    other = tmp_path / "other"
    runner.invoke(
        main,
        [
            "scenarios/steady_8b_h100.yaml",
            "--out",
            str(other),
            "--no-plot",
            "--seed",
            "1",
            "--set",
            "duration_s=60",
        ],
    )
    assert (other / "summary.json").read_bytes() != outputs[0][0]
