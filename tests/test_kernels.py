"""Kernels against their references, on CPU in Pallas TPU interpret mode, plus real Mosaic compiles for
v5e and v6e when libtpu is installed.

Tolerances: float32 inputs -- max abs error 1e-5 (the kernel's online softmax sums in a different order);
bfloat16 inputs -- 2e-2 (bf16 has 8 bits of mantissa; both sides accumulate in float32).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="needs the jax extra")
import jax.numpy as jnp  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kernels import dispatch  # noqa: E402
from kernels.block_sizes import BlockSizes  # noqa: E402
from kernels.kv_cache_update.kernel import kv_cache_update_kernel  # noqa: E402
from kernels.kv_cache_update.reference import kv_cache_update_reference  # noqa: E402
from kernels.ragged_paged_attention.kernel import ragged_paged_attention_kernel  # noqa: E402
from kernels.ragged_paged_attention.reference import ragged_paged_attention_reference  # noqa: E402

TOL = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2}
SMALL_BLOCKS = BlockSizes(2, 2)  # 2 query tokens x 2 pages per step: many steps on tiny shapes


def batch(
    q_lens,
    kv_lens,
    *,
    hq=4,
    hkv=1,
    d=64,
    page=8,
    pages_per_seq=6,
    num_tokens=None,
    max_seqs=None,
    dtype=jnp.float32,
    seed=0,
):
    """A ragged batch: sequence s has q_lens[s] new tokens, kv_lens[s] tokens in cache (new ones included).
    Returns the attention args, the new K/V rows and their slots."""
    rng = np.random.default_rng(seed)
    s_used = len(q_lens)
    s_max = max_seqs or s_used
    t = num_tokens or max(1, sum(q_lens))
    num_pages = s_max * pages_per_seq + 2
    cu = np.zeros(s_max + 1, np.int32)
    cu[1 : s_used + 1] = np.cumsum(q_lens)
    cu[s_used + 1 :] = cu[s_used]
    kv = np.zeros(s_max, np.int32)
    kv[:s_used] = kv_lens
    table = rng.permutation(num_pages)[: s_max * pages_per_seq].reshape(s_max, pages_per_seq).astype(np.int32)
    slots = np.full(t, -1, np.int32)
    for s in range(s_used):
        for i in range(q_lens[s]):
            pos = kv_lens[s] - q_lens[s] + i
            slots[cu[s] + i] = table[s, pos // page] * page + pos % page

    def rand(*shape):
        return jnp.asarray(rng.standard_normal(shape), dtype)

    args = (
        rand(t, hq, d),
        rand(hkv, num_pages, page, d),
        rand(hkv, num_pages, page, d),
        jnp.asarray(kv),
        jnp.asarray(table),
        jnp.asarray(cu),
        jnp.asarray([s_used], jnp.int32),
    )
    return args, rand(t, hkv, d), rand(t, hkv, d), jnp.asarray(slots)


def assert_close(out, ref, dtype):
    err = float(jnp.max(jnp.abs(out.astype(jnp.float32) - ref.astype(jnp.float32))))
    assert err <= TOL[dtype], f"max abs error {err} > {TOL[dtype]}"


def check(q_lens, kv_lens, blocks=SMALL_BLOCKS, dtype=jnp.float32, **options):
    layout = {
        k: options.pop(k)
        for k in ("hq", "hkv", "d", "page", "pages_per_seq", "num_tokens", "max_seqs")
        if k in options
    }
    args, *_ = batch(q_lens, kv_lens, dtype=dtype, **layout)
    ref = ragged_paged_attention_reference(*args, **options)
    out = ragged_paged_attention_kernel(*args, block_sizes=blocks, interpret=True, **options)
    assert_close(out, ref, dtype)


CASES = {
    "decodes only": ([1, 1, 1], [5, 17, 33]),
    "prefills only": ([9, 14], [9, 20]),
    "mixed": ([1, 7, 1, 12], [8, 7, 40, 30]),
    "single token, empty cache before it": ([1], [1]),
    "a sequence with nothing new": ([3, 0, 2], [3, 10, 9]),
    "pages exactly full": ([2, 1], [16, 24]),
    "one token over a page": ([2, 1], [17, 25]),
    "longer than one KV block and one q block": ([11], [45]),
}


@pytest.mark.parametrize("name", CASES)
def test_attention_matches_reference(name):
    check(*CASES[name])


@pytest.mark.parametrize(("hq", "hkv"), [(2, 2), (8, 2), (8, 1)])  # GQA ratios 1, 4, 8
@pytest.mark.parametrize("d", [64, 128])
def test_gqa_ratios_and_head_dims(hq, hkv, d):
    blocks = BlockSizes(8 // (hq // hkv) if hq // hkv < 8 else 1, 2)
    check([1, 6, 1], [9, 12, 26], blocks=blocks, hq=hq, hkv=hkv, d=d)


def test_bf16_within_stated_tolerance():
    check([1, 9, 1], [12, 20, 30], blocks=BlockSizes(4, 2), dtype=jnp.bfloat16, page=16, pages_per_seq=3)


def test_sliding_window_and_soft_cap():
    check([1, 8, 1], [30, 24, 44], sliding_window=9, soft_cap=15.0)


def test_padding_tokens_and_unused_sequence_slots_give_zeros():
    args, *_ = batch([3, 1], [5, 9], num_tokens=8, max_seqs=4)
    out = ragged_paged_attention_kernel(*args, block_sizes=BlockSizes(2, 2), interpret=True)
    assert_close(out, ragged_paged_attention_reference(*args), jnp.float32)
    assert float(jnp.abs(out[4:]).max()) == 0.0


def test_kv_cache_update_and_fused_update_match_reference():
    args, k_new, v_new, slots = batch([1, 5, 1, 9], [7, 5, 17, 24], num_tokens=18)
    q, k_pages, v_pages, *rest = args
    ref_k, ref_v = kv_cache_update_reference(k_new, v_new, k_pages, v_pages, slots)
    k, v = kv_cache_update_kernel(k_new, v_new, k_pages, v_pages, slots, tokens_per_step=8, interpret=True)
    assert float(jnp.abs(k - ref_k).max()) == 0.0 and float(jnp.abs(v - ref_v).max()) == 0.0
    ref = ragged_paged_attention_reference(q, ref_k, ref_v, *rest)
    out, k, v = ragged_paged_attention_kernel(
        q,
        k_pages,
        v_pages,
        *rest,
        k_new,
        v_new,
        slots,
        block_sizes=BlockSizes(2, 2),
        interpret=True,
        fused_update=True,
    )
    assert_close(out, ref, jnp.float32)
    assert float(jnp.abs(k - ref_k).max()) == 0.0 and float(jnp.abs(v - ref_v).max()) == 0.0


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_random_ragged_layouts(data):
    """Shapes stay fixed (so the kernel compiles once); the layout inside them is random."""
    s_used = data.draw(st.integers(1, 4))
    q_lens = [data.draw(st.integers(0, 6)) for _ in range(s_used)]
    kv_lens = [q + data.draw(st.integers(0, 40 - q)) for q in q_lens]
    args, *_ = batch(q_lens, kv_lens, num_tokens=24, max_seqs=4, seed=data.draw(st.integers(0, 99)))
    out = ragged_paged_attention_kernel(*args, block_sizes=BlockSizes(2, 2), interpret=True)
    assert_close(out, ragged_paged_attention_reference(*args), jnp.float32)


def test_illegal_block_sizes_are_clear_errors():
    args, *_ = batch([2], [4], dtype=jnp.bfloat16, page=16, pages_per_seq=1)
    with pytest.raises(ValueError, match=r"3 x 4 = 12 rows must be a multiple of 16"):
        ragged_paged_attention_kernel(*args, block_sizes=BlockSizes(3, 1), interpret=True)
    with pytest.raises(ValueError, match="scoped limit"):
        BlockSizes(64, 4096).check(group=4, page_size=16, head_dim=128, dtype_bytes=2)
    with pytest.raises(ValueError, match="no default block sizes"):
        BlockSizes.default("v2", group=4, page_size=16)


def test_dispatcher_flag_and_logged_fallback(monkeypatch, caplog):
    args, *_ = batch([1, 4], [6, 9])
    ref = ragged_paged_attention_reference(*args)
    monkeypatch.setenv(dispatch.ENV, "pallas")
    dispatch._logged.clear()
    with caplog.at_level(logging.WARNING, logger="servesim.kernels"):
        out = dispatch.ragged_paged_attention(*args)  # CPU, no interpret mode: falls back, says why
    assert_close(out, ref, jnp.float32)
    assert "no TPU backend" in caplog.text
    out = dispatch.ragged_paged_attention(*args, interpret=True, block_sizes=BlockSizes(2, 2))
    assert_close(out, ref, jnp.float32)
    monkeypatch.setenv(dispatch.ENV, "reference")
    assert dispatch.chosen(None) == "reference"
    monkeypatch.setenv(dispatch.ENV, "triton")
    with pytest.raises(ValueError, match="SERVESIM_KERNELS"):
        dispatch.chosen(None)


def _libtpu_topology(name):
    import os

    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    try:
        from jax.experimental import topologies

        return topologies.get_topology_desc(name, "tpu")
    except Exception as exc:  # libtpu missing or unable to describe the chip
        pytest.skip(f"cannot describe a {name} TPU here (needs libtpu, the tpu extra): {exc}")


@pytest.mark.parametrize("generation,topology", [("v5e", "v5e:2x2"), ("v6e", "v6e:2x2")])
def test_kernels_lower_through_mosaic_for_real_tpus(generation, topology):
    """AOT-compile for a real TPU on this CPU host: proves the kernels pass Mosaic's checks (tiling,
    alignment, VMEM), which interpret mode does not."""
    from jax.sharding import SingleDeviceSharding

    device = _libtpu_topology(topology).devices[0]
    sharding = SingleDeviceSharding(device)

    def spec(shape, dtype):
        return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)

    t, hq, hkv, d, pages, page, seqs, per_seq = 128, 32, 8, 128, 256, 16, 16, 32
    bf16 = jnp.bfloat16
    args = (
        spec((t, hq, d), bf16),
        spec((hkv, pages, page, d), bf16),
        spec((hkv, pages, page, d), bf16),
        spec((seqs,), jnp.int32),
        spec((seqs, per_seq), jnp.int32),
        spec((seqs + 1,), jnp.int32),
        spec((1,), jnp.int32),
    )
    new = (spec((t, hkv, d), bf16), spec((t, hkv, d), bf16), spec((t,), jnp.int32))
    blocks = BlockSizes.default(generation, group=hq // hkv, page_size=page)
    jax.jit(
        lambda *a: ragged_paged_attention_kernel(*a, block_sizes=blocks, sliding_window=64, soft_cap=30.0)
    ).lower(*args).compile()
    jax.jit(lambda *a: ragged_paged_attention_kernel(*a, block_sizes=blocks, fused_update=True)).lower(
        *args, *new
    ).compile()
    jax.jit(lambda *a: kv_cache_update_kernel(*a)).lower(new[0], new[1], args[1], args[2], new[2]).compile()


# ---- timing through calibrate, and the simulator's use of a kernels section ----------------------------


def test_calibrate_kernels_refuses_to_time_interpret_mode(tmp_path):
    from click.testing import CliRunner

    from calibrate.cli import main

    args = [
        "--host",
        "tpu-v6e",
        "--model",
        "llama-3.1-8b",
        "--method",
        "kernels",
        "--out",
        tmp_path / "p.json",
    ]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 2
    assert "needs a TPU backend" in result.output and "interpret mode" in result.output


def test_kernel_shapes_come_from_the_simulated_traffic_mix():
    from calibrate.kernels import AttentionCall, kernel_inputs, traffic_calls, traffic_scenario

    assert AttentionCall("prefill", (3,), (5,)).attention_pairs == 3 + 4 + 5  # causal, hand-counted
    calls = traffic_calls(traffic_scenario("llama-3.1-8b", "tpu-v6e", num_requests=120), per_case=3)
    cases = {c.case for c in calls}
    assert {"decode", "mixed"} <= cases
    for c in calls:
        assert all(kv >= q for q, kv in zip(c.q_lens, c.kv_lens, strict=True))
        assert (c.case == "decode") == all(q == 1 for q in c.q_lens) or c.case == "mixed"
    small = min(calls, key=lambda c: c.num_tokens * sum(c.kv_lens))
    args = kernel_inputs(small, num_q_heads=4, num_kv_heads=1, head_dim=64, page_size=16, dtype=jnp.float32)
    out = ragged_paged_attention_reference(*args)
    assert out.shape == (small.num_tokens, 4, 64) and bool(jnp.isfinite(out).all())


def test_a_kernels_section_replaces_the_roofline_attention_term(tmp_path):
    from sim.cost.base import StepBatch
    from sim.live.environment import provenance
    from sim.loader import load_scenario_dict
    from sim.profile import FitQuality, KernelFit, KernelSection, Profile, save_profile
    from sim.resolve import resolve

    # A hand-made section (test data, labelled estimated): 20 us + 1 ns per KV token per layer.
    fit = KernelFit(
        intercept_s=20e-6,
        coefficients={"kv_read_tokens": 1e-9, "attention_pairs": 0.0, "num_seqs": 0.0},
        quality=FitQuality(r2=1, max_rel_residual=0, p95_rel_residual=0, num_train=4, num_test=0),
    )
    section = KernelSection(
        provenance=provenance("estimated", "test", "hand-made"),
        implementation="test",
        block_sizes={"block_q": 32, "pages_per_block": 8},
        dtype="bfloat16",
        num_q_heads=32,
        num_kv_heads=8,
        head_dim=128,
        page_size=128,
        samples=[],
        fit=fit,
    )
    path = tmp_path / "p.json"
    save_profile(
        Profile(model="llama-3.1-8b", hardware="tpu-v6e", servesim_version="test", kernels=section), path
    )
    base = {
        "name": "k",
        "model": "llama-3.1-8b",
        "hardware": "tpu-v6e",
        "profile": str(path),
        "engine": {"max_model_len": 8192},
        "workload": {"lengths": {"kind": "fixed", "input_len": 8, "output_len": 8}, "arrivals": {"rate": 1}},
        "num_requests": 1,
    }
    roof = resolve(load_scenario_dict(base)).build_step_model()
    kern = resolve(
        load_scenario_dict({**base, "cost_model": {"kind": "roofline", "attention": "kernel"}})
    ).build_step_model()
    batch = StepBatch(64, 64 * 2000, (), (), 64)  # 64 decodes over 2,000-token contexts
    tokens, pairs, kv = batch.work()
    roof_parts, kern_parts = roof.parts(batch, 0, 0), kern.parts(batch, 0, 0)
    c_roof, m_roof = roof_parts.compute_s, roof_parts.memory_s
    c_kern, m_kern = kern_parts.compute_s, kern_parts.memory_s
    attention = 32 * (20e-6 + 1e-9 * kv)  # 32 layers
    assert c_kern == pytest.approx(c_roof - roof._attn_flops_per_pair * pairs / roof._flops_per_s + attention)
    assert m_kern == pytest.approx(m_roof - roof._kv_bytes_per_token * kv / roof._bytes_per_s + attention)
    assert "replaces the roofline's attention term" in kern.provenance["attention"]
    from sim.errors import InputError

    with pytest.raises(InputError, match="kernels section"):
        resolve(
            load_scenario_dict(
                {**base, "profile": None, "cost_model": {"kind": "roofline", "attention": "kernel"}}
            )
        )
