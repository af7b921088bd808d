"""validate replay: recorded vLLM runs through the simulator, compared metric by metric."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from sim.validate.cli import main as validate_main
from sim.validate.recorded import catalog_hardware, catalog_model, read_records

CONSTANT = ["--set", "cost_model.kind=constant", "--set", "cost_model.step_s=0.01"]


def _bundle(folder, *, first_token_after_s: float, model="meta-llama/Llama-3.1-8B"):
    """Two requests queued at t = 0 and 1 s, 16-token prompts, 3 output tokens, measured with a first token
    `first_token_after_s` after queueing and 10 ms per further token."""
    folder.mkdir(parents=True)
    meta = {
        "model": model,
        "vllm_version": "0.19.0",
        "engine_kwargs": {
            "tensor_parallel_size": 1,
            "max_num_seqs": 8,
            "max_num_batched_tokens": 2048,
            "max_model_len": 4096,
            "dtype": "bfloat16",
            "kv_cache_dtype": "auto",
        },
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "llmservingsim_cluster_config.json").write_text(
        json.dumps({"nodes": [{"instances": [{"hardware": "RTXPRO6000"}]}]})
    )
    rows = []
    for i, queued in enumerate((100.0, 101.0)):
        first = queued + first_token_after_s
        rows.append(
            {
                "request_id": f"r{i}",
                "input_toks": 16,
                "output_toks": 3,
                "queued_ts": queued,
                "first_token_ts": first,
                "last_token_ts": first + 0.02,
            }
        )
    (folder / "requests.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (folder / "llmservingsim_summary.txt").write_text(
        "TTFT Mean 10.0 11.0 +10.0%\nTPOT Mean 10.0 9.0 -10.0%\n"
    )


def test_names_in_records_map_to_the_catalog():
    assert catalog_model("meta-llama/Llama-3.1-8B") == ("llama-3.1-8b", "bfloat16")
    assert catalog_model("nvidia/Llama-3.1-8B-Instruct-FP8") == ("llama-3.1-8b", "fp8")
    assert catalog_model("Qwen/Qwen3-30B-A3B-Instruct-2507") == ("qwen3-30b-a3b", "bfloat16")
    assert catalog_hardware("RTXPRO6000") == "rtx-pro-6000"
    assert catalog_hardware("h200_sxm") == "h200"


def test_a_bundle_measured_as_the_story_replays_with_no_error(tmp_path):
    """With 10 ms steps each request (alone in the engine) gets its first token after one step and two more
    10 ms apart: measured 10 ms TTFT and TPOT, so every error is zero."""
    _bundle(tmp_path / "run", first_token_after_s=0.01)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        validate_main, ["replay", str(tmp_path / "run"), "--out", str(out), *CONSTANT]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "run" / "validation.json").read_text())
    errors = {row["metric"]: row["rel_error"] for row in doc["comparison"]}
    assert errors["TTFT mean (ms)"] == pytest.approx(0.0, abs=1e-9)
    assert errors["TPOT mean (ms)"] == pytest.approx(0.0, abs=1e-9)
    assert not any(m.startswith("ITL") for m in errors)  # no per-token times recorded: not compared
    # the reference simulator's own errors come along: 11 vs 10 ms, 9 vs 10 ms
    reference = {row["metric"]: row["reference_rel_error"] for row in doc["comparison"]}
    assert reference["TTFT mean (ms)"] == pytest.approx(0.1) and reference["TPOT mean (ms)"] == pytest.approx(
        -0.1
    )
    # the replayed scenario is written out and runs on its own
    assert (out / "run" / "scenario.yaml").is_file() and (out / "run" / "trace.csv").is_file()
    assert "| all runs | 1 |" in (out / "replay.md").read_text()


def test_slower_measurements_show_as_negative_errors(tmp_path):
    _bundle(tmp_path / "run", first_token_after_s=0.02)  # measured TTFT 20 ms, predicted 10 ms
    out = tmp_path / "out"
    CliRunner().invoke(validate_main, ["replay", str(tmp_path / "run"), "--out", str(out), *CONSTANT])
    rows = pd.read_csv(out / "replay.csv")
    assert rows.loc[0, "ttft_ms_mean_error"] == pytest.approx(-0.5)
    # MAPE of one run is its absolute error
    assert "| all runs | 1 | 50.0% |" in (out / "replay.md").read_text()


def test_silicon_rows_become_closed_loops(tmp_path):
    csv = tmp_path / "silicon_sample.csv"
    base = {
        "backend": "vllm",
        "mode": "agg",
        "model_path": "nvidia/Llama-3.1-8B-Instruct-FP8",
        "system": "h200_sxm",
        "precision": "fp8",
        "backend_version": "0.12.0",
        "isl": 1000,
        "osl": 100,
        "tp_size": 1.0,
        "silicon_ttft_ms": 70.0,
        "silicon_tpot_ms": 11.0,
        "silicon_data_source": "test",
    }
    rows = [
        {**base, "id": "a", "batch_size": 16.0},
        {**base, "id": "moe", "model_path": "Qwen/Qwen3-30B-A3B", "batch_size": 8.0},
        {**base, "id": "sglang", "backend": "sglang", "batch_size": 8.0},
    ]
    pd.DataFrame(rows).to_csv(csv, index=False)
    runs = read_records(csv)
    assert [r.name for r in runs] == ["a"]  # MoE and other backends are left out
    workload = runs[0].scenario["workload"]
    assert workload["max_concurrency"] == 16 and workload["arrivals"] == {"rate": "inf"}
    assert runs[0].scenario["engine"]["weight_dtype"] == "fp8"
    assert runs[0].measured == {"ttft_ms_mean": 70.0, "tpot_ms_mean": 11.0}


def test_bad_records_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(
        validate_main, ["replay", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "RECORD" in result.output
    assert not (tmp_path / "o").exists()


PUBLIC = (
    __import__("pathlib").Path(__file__).resolve().parents[2]
    / "shared"
    / "validation_public"
    / "llmservingsim"
)


@pytest.mark.skipif(not PUBLIC.is_dir(), reason="the public validation runs are not beside this checkout")
@pytest.mark.parametrize(
    ("run", "tpot_band", "e2e_band"),
    [("RTXPRO6000_Qwen3-32B", 0.05, 0.05), ("RTXPRO6000_Llama-3.1-8B", 0.15, 0.20)],
)
def test_public_runs_stay_within_their_recorded_error(tmp_path, run, tpot_band, e2e_band):
    """Regression guard on two real vLLM runs, at the errors docs/validation.md reports (not targets)."""
    out = tmp_path / "out"
    result = CliRunner().invoke(validate_main, ["replay", str(PUBLIC / run), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    row = pd.read_csv(out / "replay.csv").iloc[0]
    assert row["step_times"] == "kernel tables"
    assert abs(row["tpot_ms_mean_error"]) < tpot_band and abs(row["e2e_ms_mean_error"]) < e2e_band
