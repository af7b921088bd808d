"""Sweeps: points are series x grid, failures become rows, files and plots are written."""

from __future__ import annotations

import yaml
from click.testing import CliRunner

from sim.cli import main
from sim.scenario_studies import SweepSpec
from sim.sweep import expand, run_sweep
from tests.helpers import scenario_dict


def test_expand_is_series_times_grid():
    spec = SweepSpec(
        series={"a": {"hardware": "h100"}, "b": {"hardware": "h200"}},
        grid={"workload.arrivals.rate": [1, 2, 3], "fleet.replicas": [1, 2]},
    )
    points = expand(spec)
    assert len(points) == 12
    assert points[0].values == {"hardware": "h100", "workload.arrivals.rate": 1, "fleet.replicas": 1}
    assert points[-1].label == "b__rate=3__replicas=2"


def test_sweep_runs_points_and_records_what_cannot_run(tmp_path):
    data = scenario_dict(
        model="llama-3.1-70b",
        hardware="h200",
        fleet={"tensor_parallel_size": 2},
        num_requests=30,
        sweep={
            "series": {"h200-tp2": {}, "l4-tp2": {"hardware": "l4"}},
            "grid": {"workload.arrivals.rate": [1, 4]},
        },
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    sweep = run_sweep(path)
    table = sweep.table
    assert len(table) == 4
    assert (table.loc[table.series == "l4-tp2", "error"].str.contains("does not fit")).all()
    ok = table[table.series == "h200-tp2"]
    assert (ok["error"] == "").all() and ok["goodput_rps"].gt(0).all()
    # A higher rate on the same fleet gives more output throughput.
    assert ok["output_tok_s"].iloc[1] > ok["output_tok_s"].iloc[0]
    assert set(sweep.startup["cache"]) == {"cold", "warm"}

    out = tmp_path / "out"
    result = CliRunner().invoke(main, [str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("sweep.csv", "sweep.md", "startup.csv", "startup.md", "sweep.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "points" / "h200-tp2__rate=4" / "summary.json").exists()
    assert "l4-tp2 cannot run" in result.output


def test_bad_sweep_blocks_exit_2(tmp_path):
    for sweep, message in (
        ({"grid": {"workload.arrivals.rate": []}}, "at least one value"),
        ({}, "a sweep needs series, grid, or both"),
    ):
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(scenario_dict(sweep=sweep)))
        result = CliRunner().invoke(main, [str(path), "--out", str(tmp_path / "o")])
        assert result.exit_code == 2 and message in result.output
