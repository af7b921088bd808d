"""calibrate --method kernel-tables: GPU steps composed from NVIDIA's measured kernel tables.

The tables come from the installed aiconfigurator-core (extra servesim[gpu-data]); the tests check the
interpolation against the measured points themselves, the composition against a hand sum of its lookups,
vLLM's all-reduce choice, and the profile the command writes.
"""

from __future__ import annotations

import math
import sys

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from calibrate.cli import main as calibrate_main
from sim.errors import InputError
from sim.profile import load_profile
from sim.resolve import lookup_hardware, lookup_model

pytest.importorskip(
    "aiconfigurator_core", reason="kernel tables need aiconfigurator-core (pip install 'servesim[gpu-data]')"
)

from calibrate import kernel_tables as kt  # noqa: E402


@pytest.fixture(scope="module")
def rtx_8b():
    arch, hw = lookup_model("llama-3.1-8b"), lookup_hardware("rtx-pro-6000")
    tables = kt.load_tables("rtx-pro-6000", arch, hw, 1, "bfloat16", "auto", "0.19.0")
    return arch, tables


def _gemm_frame(tables) -> pd.DataFrame:
    source = tables.sources["gemm"]
    frame = pd.concat(
        pd.read_parquet(p) for p in sorted((kt.systems_dir().parent / source.path).glob("*.parquet"))
    )
    return frame[frame["kernel_source"] == source.kernel]


def test_interpolation_returns_measured_points_exactly(rtx_8b):
    """At a measured (m, n, k) the GEMM lookup is that measurement, and it is not flagged."""
    _, tables = rtx_8b
    frame = _gemm_frame(tables).sample(25, random_state=0)
    for row in frame.itertuples():
        seconds, beyond = tables.gemm.seconds(row.m, row.n, row.k)
        assert not beyond
        assert seconds == pytest.approx(row.latency * 1e-3, rel=1e-9)


def test_gemm_between_measured_m_is_linear(rtx_8b):
    _, tables = rtx_8b
    (n, k), (ms, ts) = next((key, c) for key, c in tables.gemm.curves.items() if len(c[0]) > 4)
    m = (ms[2] + ms[3]) / 2
    expected = ts[2] + (ts[3] - ts[2]) * (m - ms[2]) / (ms[3] - ms[2])
    assert tables.gemm.seconds(m, n, k)[0] == pytest.approx(expected, rel=1e-9)


def test_a_decode_step_is_the_sum_of_its_lookups(rtx_8b):
    """Batch-1 decode of Llama-3.1-8B, summed by hand from the same tables."""
    arch, tables = rtx_8b
    composer = kt.StepComposer(arch, tables, 1, 2)
    step = composer.step(1, 1024, [])
    h, q, kv, inter = 4096, 32 * 128, 8 * 128, 14336
    gemms = sum(
        tables.gemm.seconds(1, n, k)[0] for n, k in ((q + 2 * kv, h), (h, q), (2 * inter, h), (h, inter))
    )
    attention = tables.generation.seconds(1, 1024)[0]
    head = tables.lm_head_gemm.seconds(1, arch.vocab_size, h)[0]
    sampler = max(tables.kernel_floor_s, arch.vocab_size * 4 * 3 / tables.stream_bytes_s)
    small = composer._small(1)
    by_hand = 32 * (gemms + attention + small) + head + sampler + kt.HOST_STEP_S
    assert step.seconds == pytest.approx(by_hand, rel=1e-9)
    assert step.seconds == pytest.approx(sum(step.parts.values()), rel=1e-12)
    # a batch-1 decode streams ~16 GB of weights: between the datasheet floor and twice it
    floor = arch.weight_bytes / (1792e9)
    assert floor < step.seconds < 2 * floor


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 256),
    extra=st.integers(1, 64),
    context=st.integers(16, 16384),
)
def test_steps_grow_with_batch_and_context(rtx_8b, batch, extra, context):
    """More sequences or longer contexts never make a step faster -- beyond the tables' own noise: small-m
    GEMMs measured a few per cent apart are not ordered (m=1 and m=4 of one shape differ by up to ~5%)."""
    arch, tables = rtx_8b
    composer = kt.StepComposer(arch, tables, 1, 2)
    base = composer.step(batch, batch * context, []).seconds
    noise = 0.05
    assert composer.step(batch + extra, (batch + extra) * context, []).seconds >= base * (1 - noise)
    assert composer.step(batch, batch * (context + 512), []).seconds >= base * (1 - noise)
    assert composer.step(batch + 256, (batch + 256) * context, []).seconds > base


def test_beyond_the_grid_is_flagged_and_scaled(rtx_8b):
    arch, tables = rtx_8b
    composer = kt.StepComposer(arch, tables, 1, 2)
    composer.step(4, 4 * 1024, [])
    # the 128,256-wide LM head is wider than any measured GEMM (n <= 65,536): scaled, and said so
    assert composer.lookups.beyond == {"lm_head": 1}
    largest = tables.generation.batches[-1]
    composer.step(int(largest * 2), int(largest * 2) * 1024, [])
    assert composer.lookups.beyond.get("generation_attention") == 1
    at_edge, _ = tables.generation.seconds(largest, 1024)
    beyond, flagged = tables.generation.seconds(largest * 2, 1024)
    assert flagged and beyond == pytest.approx(2 * at_edge)


@pytest.mark.parametrize(
    ("host", "tp", "backends"),
    [
        ("rtx-pro-6000", 2, "nccl + vllm-custom"),  # two GPUs: vLLM's custom all-reduce over P2P
        ("rtx-pro-6000", 4, "nccl"),  # PCIe only, more than two GPUs: vLLM turns custom all-reduce off
        ("h100", 8, "nccl + vllm-custom"),  # NVLink: custom below 8 MiB, NCCL above
    ],
)
def test_allreduce_follows_vllms_choice(host, tp, backends):
    arch, hw = lookup_model("llama-3.1-70b"), lookup_hardware(host)
    tables = kt.load_tables(host, arch, hw, tp, "bfloat16", "auto", "0.19.0")
    assert tables.allreduce_backend == backends
    sizes = [s.message_bytes for s in tables.allreduce_samples]
    assert sizes == sorted(sizes) and len(sizes) > 5
    if "custom" in backends:
        assert "allreduce_custom" in tables.sources
        assert max(sizes) > kt.CUSTOM_ALLREDUCE_MAX_BYTES  # NCCL carries the large messages


def test_fp8_weights_and_kv_pick_their_kernels():
    arch, hw = lookup_model("llama-3.1-8b"), lookup_hardware("h100")
    bf16 = kt.load_tables("h100", arch, hw, 1, "bfloat16", "auto", "0.19.0")
    fp8 = kt.load_tables("h100", arch, hw, 1, "fp8", "fp8", "0.19.0")
    assert fp8.sources["gemm"].kernel in kt.GEMM_KERNELS["fp8"]
    assert fp8.sources["lm_head"].kernel in kt.GEMM_KERNELS["bfloat16"]  # the LM head stays unquantized
    assert fp8.sources["generation_attention"].kernel == "vllm_flash_attn_fa3"  # Hopper: FA3 reads fp8 KV
    big = (1024, 14336 * 2, 4096)
    assert fp8.gemm.seconds(*big)[0] < bf16.gemm.seconds(*big)[0]


def test_held_out_checks_are_real(rtx_8b):
    _, tables = rtx_8b
    check = kt.held_out_grid_check(tables.generation)
    assert check.points > 10
    assert 0 <= check.median_rel_error <= check.p95_rel_error <= check.max_rel_error
    # a table whose log-latency is linear in log-length interpolates without error
    linear = kt.CurveTable(
        pd.Series([1.0, 2.0, 4.0, 8.0]).to_numpy(), pd.Series([1.0, 2.0, 4.0, 8.0]).to_numpy()
    )
    assert kt.held_out_curve_check(linear).max_rel_error == pytest.approx(0.0, abs=1e-12)


def test_the_command_writes_a_profile_that_simulate_reads(tmp_path):
    out = tmp_path / "rtx-8b.json"
    args = ["--host", "rtx-pro-6000", "--model", "llama-3.1-8b", "--method", "kernel-tables", "--quick"]
    result = CliRunner().invoke(calibrate_main, [*args, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    profile = load_profile(out)
    steps = profile.steps
    assert steps.provenance.method == "kernel-tables"
    assert "aiconfigurator-core" in steps.provenance.libraries
    # the RTX PRO 6000's GEMM and attention tables were measured under vLLM 0.24.0 only: said, not hidden
    assert steps.vllm_version == "0.24.0" and "gemm" in steps.components
    assert "warning (kernel-tables): asked for vLLM 0.19.0" in result.output
    assert {"gemm", "context_attention", "generation_attention"} <= set(steps.interpolation_check)
    assert steps.fit.quality.num_test > 0 and steps.fit.quality.p95_rel_residual < 0.25
    for sample in steps.samples[::7]:
        predicted = steps.fit.predict(
            sample.num_tokens, sample.attention_pairs, sample.kv_read_tokens, sample.num_seqs
        )
        assert math.isclose(predicted, sample.seconds, rel_tol=0.35)
    again = CliRunner().invoke(calibrate_main, [*args, "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output  # never overwrites silently


def test_missing_tables_are_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "aiconfigurator_core", None)
    with pytest.raises(InputError, match="servesim\\[gpu-data\\]"):
        kt.systems_dir()
    result = CliRunner().invoke(
        calibrate_main,
        [
            "--host",
            "l4",
            "--model",
            "llama-3.1-8b",
            "--method",
            "kernel-tables",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert result.exit_code == 2 and "kernel-tables" in result.output
    assert not (tmp_path / "x").exists()
