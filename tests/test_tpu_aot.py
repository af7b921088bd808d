"""calibrate's tpu-aot method: vLLM's TPU serving step compiled by libtpu for a described topology, on CPU.

A small model compiles in seconds; the full-size compiles run in `calibrate`, not here. Checked: the
profile's fields, that the compiler prices a Pallas call exactly from its cost estimate (what
calibrate/tpu_aot.py's attention_seconds assumes), and that the simulator refuses a profile made for
another TP size or one that says the model does not fit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sim.architecture import ModelArchitecture
from sim.cli import main as simulate_main
from sim.resolve import lookup_hardware

pytest.importorskip("libtpu", reason="AOT compiles for TPU need libtpu (pip install 'servesim[tpu]')")

SMALL = ModelArchitecture(
    name="small-llama",
    source="a 2-layer Llama shape for compile tests",
    num_layers=2,
    hidden_size=512,
    num_attention_heads=4,
    num_kv_heads=2,
    head_dim=128,
    intermediate_size=1024,
    vocab_size=2048,
    tie_word_embeddings=False,
    max_position_embeddings=4096,
    dtype_bytes=2,
)


@pytest.fixture(scope="module", params=["tpu-v5e", "tpu-v6e"])
def small_profile(request, tmp_path_factory):
    from calibrate.store import PointStore
    from calibrate.tpu_aot import measure_tpu_aot

    host = request.param
    store = PointStore(tmp_path_factory.mktemp("aot") / "p.json", resume=False)
    steps, compiled = measure_tpu_aot(
        SMALL,
        lookup_hardware(host),
        host=host,
        tp=1,
        weight_dtype="bfloat16",
        kv_cache_dtype="auto",
        budget=64,  # token buckets 16, 32, 64: enough samples for the step fit
        max_num_seqs=32,
        max_model_len=4096,
        quick=False,
        store=store,
        point_timeout=None,
        on_point=lambda key, result: None,
    )
    return host, steps, compiled


def test_the_profile_records_the_compilers_numbers(small_profile):
    host, steps, compiled = small_profile
    assert steps is not None and steps.provenance.method == "compiler-estimated"
    assert "libtpu" in steps.provenance.notes and steps.tensor_parallel_size == 1
    assert all(s.seconds > 0 for s in steps.samples)
    assert {s.kind for s in steps.samples} >= {"decode", "prefill"}
    assert compiled.topology.startswith(host.removeprefix("tpu-")) and compiled.fits_hbm is True
    assert compiled.compile_host is not None and compiled.compile_host.reference_compile_s > 0
    buckets = [s.token_bucket for s in compiled.samples]
    assert buckets == [16, 32, 64]
    for sample in compiled.samples:
        assert sample.cold_s > 0 and sample.optimal_seconds > 0 and sample.flops > 0
        assert sample.peak_hbm_bytes > 0 and sample.request_bucket >= 8
    # buckets 16 and 32 both compile a decode step (16 and 32 sequences at 1024 tokens of context):
    # twice the sequences never cost less in the compiler's view
    assert compiled.samples[1].optimal_seconds >= compiled.samples[0].optimal_seconds


def test_the_compiler_prices_a_pallas_call_from_its_estimate_alone():
    """attention_seconds = the estimate at the chip's peak rates: the compiler's own price of it, i.e. the
    difference between the attention program with the estimate and with an empty one."""
    import jax.numpy as jnp
    from jax.experimental import pallas as pl

    from calibrate import tpu_aot
    from calibrate import tpu_step as ts

    hw = lookup_hardware("tpu-v6e")
    mesh = ts.make_mesh(tpu_aot._topology("tpu-v6e", 1), 1)
    batch = ts.batch_for("decode", 16, 16, 1024)
    args = ts.attention_args(SMALL, mesh, batch, jnp.bfloat16)
    with_estimate = ts.cost_of(
        ts.compile_program(ts.attention_program(SMALL, mesh, batch, "v6e", 2), args)[1]
    )
    original = ts.attention_estimate
    try:
        ts.attention_estimate = lambda *a, **k: pl.CostEstimate(flops=0, transcendentals=0, bytes_accessed=0)
        without = ts.cost_of(ts.compile_program(ts.attention_program(SMALL, mesh, batch, "v6e", 2), args)[1])
    finally:
        ts.attention_estimate = original
    priced = with_estimate.optimal_seconds - without.optimal_seconds
    assert priced == pytest.approx(tpu_aot.attention_seconds(SMALL, hw, batch, 1, 2), rel=0.1)


def _tpu_scenario(tmp_path, profile: dict, tp: int) -> str:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(profile))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"name: s\nmodel: llama-3.1-8b\nhardware: tpu-v6e\nprofile: {path}\nnum_requests: 10\n"
        f"fleet: {{tensor_parallel_size: {tp}}}\nengine: {{max_model_len: 4096}}\n"
        "workload: {lengths: {kind: fixed, input_len: 64, output_len: 8}, arrivals: {rate: 2}}\n"
    )
    return str(scenario)


def test_simulate_refuses_compile_times_of_another_tp_or_a_model_that_does_not_fit(tmp_path):
    shipped = json.loads(Path("profiles/tpu-v6e-llama-3.1-8b.json").read_text())
    result = CliRunner().invoke(
        simulate_main, [_tpu_scenario(tmp_path, shipped, 2), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "TP1" in result.output and "TP2" in result.output
    shipped["compile"] |= {"fits_hbm": False, "fit_reason": "peak 40.0 GiB per chip over the 31.3 GiB of HBM"}
    result = CliRunner().invoke(
        simulate_main, [_tpu_scenario(tmp_path, shipped, 1), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "does not fit" in result.output and "40.0 GiB" in result.output
    assert not (tmp_path / "o").exists()
