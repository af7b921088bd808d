"""The `simulate` command: results written, JSON schema, and one clear line with exit 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sim.cli import main
from tests.helpers import scenario_dict


def write(tmp_path: Path, data: dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_writes_every_result_file(tmp_path):
    out = tmp_path / "out"
    result = run(write(tmp_path, scenario_dict()), "--out", out)
    assert result.exit_code == 0, result.output
    for name in ("summary.json", "requests.csv", "timeseries.csv", "timeseries.png"):
        assert (out / name).stat().st_size > 0
    doc = json.loads((out / "summary.json").read_text())
    assert set(doc) == {"metadata", "summary", "servesim"}
    assert doc["summary"]["completed"] == 50
    assert "goodput" in result.output and "simulated" in result.output


def test_parquet_tables_hold_exactly_what_csv_rounds(tmp_path):
    """--tables parquet writes the same tables, exactly (CSV keeps 9 significant digits); --no-requests
    skips the per-request table."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = write(tmp_path, scenario_dict())
    assert run(path, "--out", tmp_path / "csv", "--no-plot").exit_code == 0
    assert run(path, "--out", tmp_path / "pq", "--no-plot", "--tables", "parquet").exit_code == 0
    exact = pd.read_parquet(tmp_path / "pq" / "requests.parquet")
    rounded = pd.read_csv(tmp_path / "csv" / "requests.csv", keep_default_na=False, na_values=[""])
    assert list(exact.columns) == list(rounded.columns) and len(exact) == 50
    assert exact["e2e_s"].to_numpy() == pytest.approx(rounded["e2e_s"].to_numpy(), rel=1e-8)
    assert (tmp_path / "pq" / "timeseries.parquet").exists()
    assert run(path, "--out", tmp_path / "none", "--no-plot", "--no-requests").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "none").iterdir()) == ["summary.json", "timeseries.csv"]


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name == "pyarrow":
            raise ImportError("no pyarrow here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    result = CliRunner().invoke(main, [str(write(tmp_path, scenario_dict())), "--tables", "parquet"])
    assert result.exit_code == 2
    assert "servesim[parquet]" in result.output and "Traceback" not in result.output


def test_json_flag_seed_and_overrides(tmp_path):
    out = tmp_path / "out"
    result = run(
        write(tmp_path, scenario_dict()),
        "--out",
        out,
        "--json",
        "--seed",
        "7",
        "--no-plot",
        "--set",
        "fleet.replicas=2",
        "--set",
        "workload.arrivals.rate=9",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["metadata"]["seed"] == 7 and doc["metadata"]["request_rate"] == 9
    assert doc["servesim"]["scenario"]["fleet"]["replicas"] == 2
    assert not (out / "timeseries.png").exists()


def test_per_request_dump(tmp_path):
    out = tmp_path / "out"
    assert run(write(tmp_path, scenario_dict()), "--out", out, "--per-request", "--no-plot").exit_code == 0
    per = json.loads((out / "summary.json").read_text())["per_request"]
    assert len(per) == 50 and len(per[0]["itl"]) == per[0]["generated_tokens"] - 1


def test_schema_flag_prints_the_json_schema():
    result = run("--schema")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "workload" in schema["properties"] and "fleet" in schema["properties"]


BAD = [
    ({"fleet": {"replicas": 1, "replicaz": 2}}, "fleet.replicaz: Extra inputs are not permitted"),
    ({"fleet": {"replicas": "two"}}, "fleet.replicas: Input should be a valid integer"),
    ({"fleet": {"replicas": 0}}, "fleet.replicas: Input should be greater than or equal to 1"),
    (
        {
            "workload": {
                "lengths": {"kind": "fixed", "input_len": 8, "output_len": 8},
                "arrivals": {"rate": -3},
            }
        },
        "workload.arrivals.rate: must be > 0",
    ),
    ({"model": "llama-3.1-70b", "hardware": "l4"}, "model: llama-3.1-70b does not fit"),
    (
        {
            "workload": {"lengths": {"kind": "trace", "path": "missing.csv"}, "arrivals": None},
            "num_requests": 5,
        },
        "workload.lengths.path: no such trace file",
    ),
    ({"workload": {"lengths": {"kind": "gaussian"}, "arrivals": {"rate": 1}}}, "workload.lengths"),
    ({"num_requests": None}, "set duration_s or num_requests"),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_bad_scenarios_exit_2_with_the_field_named(tmp_path, data, message):
    out = tmp_path / "out"
    result = run(write(tmp_path, scenario_dict(**data)), "--out", out)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()  # nothing written


def test_unreadable_trace_file(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_bytes(b"\xff\xfe\x00garbage")
    data = scenario_dict(workload={"lengths": {"kind": "trace", "path": str(trace)}})
    del data["workload"]["arrivals"]
    result = run(write(tmp_path, data), "--out", tmp_path / "out")
    assert result.exit_code == 2 and "workload.lengths.path" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "fleet"], "--set: 'fleet' is not of the form dotted.key=value"),
        (["--set", "fleet.replicas=-1"], "fleet.replicas"),
        (["--set", "model.foo=1"], "cannot set 'model.foo'"),
        (["--seed", "-1"], "--seed: must be >= 0"),
        (["--runs", "0"], "--runs: must be >= 1"),
        (["--jobs", "0"], "--jobs: must be >= 1"),
    ],
)
def test_bad_flags_exit_2(tmp_path, args, message):
    result = run(write(tmp_path, scenario_dict()), "--out", tmp_path / "out", *args)
    assert result.exit_code == 2 and message in result.output


def test_missing_and_malformed_files(tmp_path):
    result = run(tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "no such file" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    result = run(bad)
    assert result.exit_code == 2 and "not valid YAML" in result.output
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    assert run(listy).exit_code == 2


def test_runs_flag_writes_a_monte_carlo_study(tmp_path):
    data = scenario_dict(cost_model={"kind": "constant", "step_s": 0.02})
    out = tmp_path / "out"
    result = run(write(tmp_path, data), "--out", out, "--runs", "3", "--jobs", "1", "--no-plot")
    assert result.exit_code == 0, result.output
    runs = (out / "runs.csv").read_text().splitlines()
    assert len(runs) == 4 and "failover risk" in (out / "variants.md").read_text()
