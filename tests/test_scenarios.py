"""Every scenario shipped under scenarios/ runs, and runs deterministically."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.cli import main
from sim.loader import load_scenario
from sim.resolve import resolve
from sim.run import run_simulation
from sim.sweep import run_sweep

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").rglob("*.yaml"))


def test_scenarios_exist():
    names = {p.name for p in SCENARIOS}
    assert {"flash_spike.yaml", "steady_8b_h100.yaml"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_runs(path):
    scenario = load_scenario(path)
    if scenario.sweep is not None:
        sweep = run_sweep(path)
        ran = [r for r in sweep.results if r is not None]
        assert ran, "no point of the sweep could run"
        summaries = [r.summary for r in ran]
    else:
        summaries = [run_simulation(resolve(scenario)).summary]
    for s in summaries:
        assert s["completed"] > 0
        assert s["completed"] + s["failures"] == s["total_requested"]


def test_flash_spike_collapses_then_recovers():
    result = run_simulation(resolve(load_scenario(Path("scenarios/flash_spike.yaml"))))
    ts = result.timeseries
    before = ts[(ts.t_end_s <= 110)]
    during = ts[(ts.t_start_s >= 160) & (ts.t_end_s <= 200)]
    after = ts[(ts.t_start_s >= 300) & (ts.t_end_s <= 400)]
    assert before["ttft_p99_ms"].max() < 1000 and after["ttft_p99_ms"].max() < 1000
    assert during["ttft_p50_ms"].min() > 1000  # the spike breaks the TTFT SLO for most requests
    assert during["goodput_rps"].mean() < 0.5 * during["arrival_rate_rps"].mean()
    assert result.summary["slo_attainment"] < 0.9


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
