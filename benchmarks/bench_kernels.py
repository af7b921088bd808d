"""Attention kernel vs its jnp reference, over shapes from a simulated traffic mix.

    python benchmarks/bench_kernels.py [--model llama-3.1-8b] [--host tpu-v6e]

On a TPU: one table row per shape (decode-heavy, prefill-heavy, mixed) with kernel and reference time per
layer, speed-up, MBU and FLOP utilisation against the datasheet. Anywhere else the kernel runs only in
interpret mode, whose timings mean nothing, so instead it prints what this host *can* measure for a TPU:
how long Mosaic takes to compile the kernels for v5e and v6e (needs libtpu), and says so.
Writes benchmarks/out/kernels.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _on_tpu(model: str, host: str) -> dict:
    from calibrate.cli import lookup_host_and_model
    from calibrate.kernels import measure_kernels
    from calibrate.store import PointStore

    arch, hw = lookup_host_and_model(host, model)
    store = PointStore(ROOT / "benchmarks" / "out" / "kernels-points.json", resume=False)
    section = measure_kernels(
        arch,
        hw,
        host=host,
        quick=False,
        store=store,
        point_timeout=600,
        on_point=lambda key, what: print(f"  {key}: {what}"),
    )
    print(
        f"{'case':8} {'tokens':>7} {'seqs':>5} {'kv tokens':>10} {'kernel us':>10} {'ref us':>9} "
        f"{'speed-up':>8} {'MBU':>6} {'FLOP%':>6}"
    )
    for s in section.samples:
        print(
            f"{s.case:8} {s.num_tokens:7d} {s.num_seqs:5d} {s.kv_read_tokens:10d} {s.kernel_s * 1e6:10.1f} "
            f"{s.reference_s * 1e6:9.1f} {s.reference_s / s.kernel_s:7.2f}x {s.mbu:6.1%} {s.flop_utilization:6.1%}"
        )
    return json.loads(section.model_dump_json())


def _aot_compile_times(model: str) -> dict:
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    import jax
    import jax.numpy as jnp
    from jax.experimental import topologies
    from jax.sharding import SingleDeviceSharding

    from calibrate.cli import lookup_host_and_model
    from kernels.block_sizes import BlockSizes
    from kernels.ragged_paged_attention.kernel import ragged_paged_attention_kernel

    arch, _ = lookup_host_and_model("tpu-v6e", model)
    out = {}
    for gen, topo_name in (("v5e", "v5e:2x2"), ("v6e", "v6e:2x2")):
        try:
            device = topologies.get_topology_desc(topo_name, "tpu").devices[0]
        except Exception as exc:
            print(f"{gen}: cannot describe the chip here ({type(exc).__name__}); install the tpu extra")
            continue
        sh = SingleDeviceSharding(device)
        hq, hkv, d, page = arch.num_attention_heads, arch.num_kv_heads, arch.head_dim, 128
        for tokens, seqs in ((256, 256), (2048, 64)):
            per_seq = 2048 // page  # 2,048-token contexts: fits v5e's 16 GiB with the cache and q
            pages = seqs * per_seq

            def spec(shape, dtype, sh=sh):
                return jax.ShapeDtypeStruct(shape, dtype, sharding=sh)

            args = (
                spec((tokens, hq, d), jnp.bfloat16),
                spec((hkv, pages, page, d), jnp.bfloat16),
                spec((hkv, pages, page, d), jnp.bfloat16),
                spec((seqs,), jnp.int32),
                spec((seqs, per_seq), jnp.int32),
                spec((seqs + 1,), jnp.int32),
                spec((1,), jnp.int32),
            )
            blocks = BlockSizes.default(gen, group=hq // hkv, page_size=page)
            start = time.perf_counter()
            jax.jit(lambda *a, b=blocks: ragged_paged_attention_kernel(*a, block_sizes=b)).lower(
                *args
            ).compile()
            seconds = time.perf_counter() - start
            key = f"{gen} tokens={tokens} seqs={seqs} {blocks}"
            out[key] = seconds
            print(
                f"Mosaic AOT compile, {model} heads per chip {hq}/{hkv} x {d}, {key}: {seconds:.2f} s (measured)"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-3.1-8b")
    parser.add_argument("--host", default="tpu-v6e")
    args = parser.parse_args()
    import jax

    platform = jax.devices()[0].platform
    if platform == "tpu":
        result = {"timed_on": "tpu", "kernels": _on_tpu(args.model, args.host)}
    else:
        print(
            f"JAX backend here: {platform}. The Pallas TPU kernel would run in interpret mode only, a Python "
            "emulation: no kernel timings are printed (run this on a TPU host)."
        )
        result = {"timed_on": platform, "aot_compile_s": _aot_compile_times(args.model)}
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernels.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
