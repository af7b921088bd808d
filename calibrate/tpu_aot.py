"""Method `tpu-aot`: TPU steps from the XLA:TPU compiler's own cost model, on a host without a TPU.

libtpu compiles for a *described* topology (`jax.experimental.topologies`), and the executable reports the
compiler's performance model of itself: `cost_analysis()["optimal_seconds"]` beside FLOPs and bytes. This
method compiles vLLM's TPU serving step (calibrate/tpu_step.py: the model's layers sharded over a TP mesh,
servesim's ragged paged attention kernel with its cache write, the LM head and sampler) and writes:

- a steps section (method *compiler-estimated*): step times of decode, prefill and mixed batches at every
  token bucket, each assembled from the compiler's estimates of one layer around its attention call and of
  the head (embedding, final norm, LM head, sampler), plus the attention call's price -- the compiler
  prices a Pallas call from its cost estimate alone (calibrate/tpu_step.py), so attention is the
  estimate of its real work at the chip's peak rates. Step = layers x (layer + attention) + head.
- a compile section: per token bucket, the whole serving step at full depth compiled cold (wall time on
  this host), with the compiler's estimate of it, FLOPs, bytes, collective bytes and peak HBM per chip,
  and whether the model fits the chips' HBM (a configuration that does not is recorded as such).

Compile wall times are this host's: the section records the CPU and a reference compile time, so a TPU
VM's host (which compiles the same programs at its own speed) can be related by the ratio of reference
times. Warm-cache compile times need a TPU host (a CPU host cannot load TPU cache entries).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from calibrate.store import PointStore, measure_point
from sim.architecture import ModelArchitecture
from sim.errors import InputError
from sim.hardware import HardwareSpec
from sim.live.environment import cpu_model, provenance
from sim.profile import CompileHost, CompileSample, CompileSection, StepSample, StepSection
from sim.runtime.buckets import request_buckets, token_buckets

TPU_HINT = 'pip install "servesim[tpu]"  (jax==0.10.2 with its libtpu)'
GENERATIONS = {"tpu-v5e": "v5e", "tpu-v6e": "v6e", "tpu-v5p": "v5p"}
CONTEXTS = (256, 1024, 4096)  # decode contexts sampled at every bucket (those within max_model_len)
PRIOR_CONTEXT = 2048  # a prefill chunk after this many computed tokens, beside one from scratch
FULL_DEPTH_KV_TOKENS = 65536  # KV tokens of a full-depth compile's probe batch, at most
REFERENCE = "the llama-3.1-8b serving step at one layer, 256 tokens, TP1, for v6e"


def topology_name(host: str, tp: int) -> str:
    """The smallest described topology with at least tp chips (a 2x2 slice for up to 4)."""
    gen = GENERATIONS[host]
    if gen == "v5p":
        return "v5p:2x2x1" if tp <= 4 else "v5p:2x2x2"
    return f"{gen}:2x2" if tp <= 4 else f"{gen}:2x4"


def _topology(host: str, tp: int):
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")  # no chip is attached: the lock only blocks
    try:
        from jax.experimental import topologies

        return topologies.get_topology_desc(topology_name(host, tp), "tpu")
    except ImportError:
        raise InputError(f"the tpu-aot method needs JAX and libtpu: {TPU_HINT}", "--method") from None
    except Exception as exc:  # libtpu missing or unable to describe the chip
        raise InputError(
            f"cannot compile for {host} here ({type(exc).__name__}: {exc}); {TPU_HINT}", "--host"
        ) from None


def libtpu_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("libtpu")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _dtypes(weight_dtype: str, kv_cache_dtype: str):
    import jax.numpy as jnp

    weights = {"bfloat16": jnp.bfloat16, "fp8": jnp.float8_e4m3fn}
    if weight_dtype not in weights:
        raise InputError(
            f"the tpu-aot method compiles bfloat16 or fp8 weights, not {weight_dtype}", "--dtype"
        )
    kv = jnp.float8_e4m3fn if kv_cache_dtype == "fp8" else jnp.bfloat16
    return weights[weight_dtype], kv, (1.0 if kv_cache_dtype == "fp8" else 2.0)


def attention_seconds(arch: ModelArchitecture, hw: HardwareSpec, batch, tp: int, kv_bytes: float) -> float:
    """The compiler's price of the attention call: its cost estimate at the chip's peak FLOP rate and HBM
    bandwidth, whichever binds (tests/test_tpu_aot.py checks this against the compiler itself)."""
    from calibrate.tpu_step import attention_estimate

    estimate = attention_estimate(arch, batch, tp, kv_bytes)
    return max(estimate.flops / hw.peak_flops, estimate.bytes_accessed / hw.memory_bandwidth_bytes_s)


def _cost_point(store: PointStore, key: str, program, args, on_point, point_timeout) -> dict | None:
    from calibrate.tpu_step import collective_bytes, compile_program, cost_of

    def work() -> dict:
        seconds, compiled = compile_program(program, args)
        cost = cost_of(compiled)
        return {
            "optimal_seconds": cost.optimal_seconds,
            "unpriced_ops": cost.unpriced_ops,
            "flops": cost.flops,
            "bytes": cost.bytes_accessed,
            "collective_bytes": collective_bytes(compiled),
            "compile_s": seconds,
        }

    skipped: list[str] = []
    return measure_point(store, key, work, point_timeout=point_timeout, skipped=skipped, on_point=on_point)


def measure_tpu_aot(
    arch: ModelArchitecture,
    hw: HardwareSpec,
    *,
    host: str,
    tp: int,
    weight_dtype: str,
    kv_cache_dtype: str,
    budget: int,
    max_num_seqs: int,
    max_model_len: int,
    quick: bool,
    store: PointStore,
    point_timeout: float | None,
    on_point: Callable[[str, str], None],
) -> tuple[StepSection | None, CompileSection]:
    from calibrate import tpu_step as ts
    from calibrate.fit import fit_steps

    if arch.num_attention_heads % tp or (arch.num_kv_heads % tp and tp % arch.num_kv_heads):
        raise InputError(
            f"{arch.num_attention_heads} q / {arch.num_kv_heads} KV heads do not split over TP{tp}", "--tp"
        )
    topology = _topology(host, tp)
    mesh = ts.make_mesh(topology, tp)
    gen = GENERATIONS[host]
    weight, kv_dtype, kv_bytes = _dtypes(weight_dtype, kv_cache_dtype)
    buckets = token_buckets(budget)
    if quick:
        buckets = [b for b in buckets if b in (16, 128, 1024)] or buckets[:3]
    seq_buckets = request_buckets(max_num_seqs)

    def seq_bucket(n: int) -> int:
        return next((b for b in seq_buckets if b >= n), seq_buckets[-1])

    reference_s = _reference_compile(store, on_point)
    # --- the compiler's estimate of the serving step at depths 1 and 2, per (token, request) bucket --------
    # per layer = cost(2) - cost(1); the rest (embedding, head, sampler) = cost(1) - per layer. Attention is
    # priced from its estimate, so a layer without it is per layer - attention(probe batch).
    pieces: dict[tuple[int, int], dict] = {}
    for t in buckets:
        for s in sorted({seq_bucket(1), seq_bucket(min(t, max_num_seqs))}):
            probe = ts.batch_for("decode" if s > seq_bucket(1) or t == 16 else "prefill", t, s, min(t, 1024))
            depth = {}
            for layers in (1, 2):
                point = _cost_point(
                    store,
                    f"tpu-aot:{host}:tp{tp}:serving:{t}:{s}:L{layers}",
                    ts.serving_program(arch, mesh, probe, gen, kv_bytes),
                    ts.serving_args(arch, mesh, probe, layers, weight, kv_dtype),
                    on_point,
                    point_timeout,
                )
                if point is not None:
                    depth[layers] = point
            if len(depth) < 2:
                continue
            per_layer = depth[2]["optimal_seconds"] - depth[1]["optimal_seconds"]
            pieces[(t, s)] = {
                "rest": depth[1]["optimal_seconds"] - per_layer,
                "layer": per_layer - attention_seconds(arch, hw, probe, tp, kv_bytes),
                "unpriced": depth[2]["unpriced_ops"] - depth[1]["unpriced_ops"],
            }
    linearity = _depth_check(
        arch, mesh, gen, kv_bytes, weight, kv_dtype, store, host, tp, on_point, pieces, hw
    )
    samples = []
    unpriced = 0
    for t in buckets:
        batches = []
        if t <= max_num_seqs:
            batches += [ts.batch_for("decode", t, seq_bucket(t), c) for c in CONTEXTS if c <= max_model_len]
        batches += [ts.batch_for("prefill", t, seq_bucket(1), c) for c in (t, t + PRIOR_CONTEXT)]
        if t >= 32:
            batches.append(ts.batch_for("mixed", t, seq_bucket(min(t // 2 + 1, max_num_seqs)), 1024))
        for batch in batches:
            piece = pieces.get((t, seq_bucket(batch.num_seqs)))
            if piece is None or max(batch.contexts) > max_model_len:
                continue
            attention = attention_seconds(arch, hw, batch, tp, kv_bytes)
            seconds = piece["rest"] + arch.num_layers * (piece["layer"] + attention)
            unpriced = max(unpriced, arch.num_layers * piece["unpriced"])
            kind = "decode" if all(n == 1 for n in batch.new_tokens) else "prefill"
            kind = "mixed" if batch.num_seqs > 1 and kind == "prefill" else kind
            samples.append(
                StepSample(
                    kind=kind,
                    num_tokens=t,  # the step computes the whole padded bucket
                    num_seqs=batch.num_seqs,
                    attention_pairs=batch.attention_pairs,
                    kv_read_tokens=batch.kv_read_tokens,
                    seconds=seconds,
                )
            )
    steps = None
    if len(samples) >= 12:
        knots = tuple(k for k in (32, 64, 128, 256, 512, 1024, 2048, 4096) if k < max(buckets))
        fit = fit_steps(samples, knots)
        on_point(
            "tpu-aot:fit", f"held-out R^2 {fit.quality.r2:.4f}, p95 error {fit.quality.p95_rel_residual:.1%}"
        )
        device_kind = (
            f"{topology.devices[0].device_kind} x{tp} ({topology_name(host, tp)}, AOT from {cpu_model()})"
        )
        notes = (
            f"the XLA:TPU compiler's estimates (libtpu {libtpu_version()}) of the serving step compiled at depths 1 "
            f"and 2 per (token, request) bucket: step = rest + {arch.num_layers} x (layer + attention), attention "
            f"= its cost estimate at the chip's peak rates (the compiler prices a Pallas call from its estimate "
            f"alone); linear in depth: {linearity}. Leaves out: host time per step, input transfer, the gap "
            f"between optimal and achieved; {unpriced} ops per step the compiler could not price (-1 s each)"
        )
        steps = StepSection(
            provenance=provenance("compiler-estimated", "tpu-aot", device_kind, notes),
            tensor_parallel_size=tp,
            dtype=weight_dtype,
            kv_cache_dtype=kv_cache_dtype,
            components={
                "layer": "compiler: norms, Q/K/V and output projections, rotary, MLP or MoE, TP all-reduces",
                "attention": "servesim's ragged paged attention (Pallas): its cost estimate priced at peak rates",
                "rest": "compiler: embedding lookup, final norm, LM head (vocabulary split), Gumbel sampler",
                "host": "not included: the simulator adds its per-step host overhead (catalog/efficiency.yaml)",
            },
            samples=samples,
            fit=fit,
        )
    compile_section = _serving_compiles(
        arch, hw, host, tp, mesh, gen, buckets, seq_bucket, max_num_seqs, weight, kv_dtype, kv_bytes,
        store, point_timeout, on_point, reference_s, topology,
    )  # fmt: skip
    return steps, compile_section


def _depth_check(arch, mesh, gen, kv_bytes, weight, kv_dtype, store, host, tp, on_point, pieces, hw) -> str:
    """The serving step at depth 4 of the smallest bucket against rest + 4 x (layer + attention)."""
    from calibrate import tpu_step as ts

    if not pieces:
        return "not checked (no bucket compiled)"
    (t, s), piece = min(pieces.items())
    probe = ts.batch_for("decode" if s > 8 or t == 16 else "prefill", t, s, min(t, 1024))
    point = _cost_point(
        store,
        f"tpu-aot:{host}:tp{tp}:serving:{t}:{s}:L4",
        ts.serving_program(arch, mesh, probe, gen, kv_bytes),
        ts.serving_args(arch, mesh, probe, 4, weight, kv_dtype),
        on_point,
        None,
    )
    if point is None:
        return "not checked (depth 4 did not compile)"
    predicted = piece["rest"] + 4 * (piece["layer"] + attention_seconds(arch, hw, probe, tp, kv_bytes))
    error = predicted / point["optimal_seconds"] - 1
    on_point(
        "tpu-aot:depth-check", f"4 layers at bucket {t}: composed {error:+.2%} off the compiled estimate"
    )
    return f"4 layers at bucket {t}, composed vs compiled {error:+.2%}"


def _reference_compile(store: PointStore, on_point) -> float:
    """Wall time of a fixed compile (REFERENCE) on this host: the yardstick between compiling hosts."""
    from calibrate import tpu_step as ts
    from sim.resolve import lookup_model

    def work() -> dict:
        import jax
        import jax.numpy as jnp

        arch = lookup_model("llama-3.1-8b")
        mesh = ts.make_mesh(_topology("tpu-v6e", 1), 1)
        batch = ts.batch_for("prefill", 256, 8, 256)
        program = ts.serving_program(arch, mesh, batch, "v6e", 2.0)
        args = ts.serving_args(arch, mesh, batch, 1, jnp.bfloat16, jnp.bfloat16)
        ts.compile_program(program, args)  # compiler start-up is not part of the yardstick
        jax.clear_caches()
        seconds, _ = ts.compile_program(program, args)
        return {"seconds": seconds}

    record = measure_point(
        store, "tpu-aot:reference", work, point_timeout=None, skipped=[], on_point=on_point
    )
    return float(record["seconds"]) if record else math.nan


def _serving_compiles(
    arch, hw, host, tp, mesh, gen, buckets, seq_bucket, max_num_seqs, weight, kv_dtype, kv_bytes,
    store, point_timeout, on_point, reference_s, topology,
) -> CompileSection:  # fmt: skip
    """The whole serving step at full depth per token bucket: cold compile time and the compiler's view."""
    from calibrate import tpu_step as ts

    samples: list[CompileSample] = []
    skipped: list[str] = []
    for t in buckets:
        s = seq_bucket(min(t, max_num_seqs))
        # contexts of 1024 tokens, at most FULL_DEPTH_KV_TOKENS in all: a probe whose KV pages alone exceed
        # HBM (256 x 1024 tokens of Llama-3.1-8B: 34 GB) tells nothing about the bucket's compile
        context = max(16, min(1024, FULL_DEPTH_KV_TOKENS // s))
        batch = ts.batch_for("decode" if t <= max_num_seqs else "prefill", t, s, context)

        def work(batch=batch, s=s) -> dict[str, Any]:
            import jax

            jax.clear_caches()
            program = ts.serving_program(arch, mesh, batch, gen, kv_bytes)
            args = ts.serving_args(arch, mesh, batch, arch.num_layers, weight, kv_dtype)
            seconds, compiled = ts.compile_program(program, args, donate=(1,))
            cost = ts.cost_of(compiled)
            return {
                "cold": seconds,
                "optimal_seconds": cost.optimal_seconds,
                "unpriced_ops": cost.unpriced_ops,
                "flops": cost.flops,
                "bytes": cost.bytes_accessed,
                "collective_bytes": ts.collective_bytes(compiled),
                "peak_hbm": ts.peak_hbm_bytes(compiled),
                "request_bucket": s,
            }

        record = measure_point(
            store,
            f"tpu-aot:{host}:tp{tp}:serving:{t}",
            work,
            point_timeout=point_timeout,
            skipped=skipped,
            on_point=on_point,
            failures_are_findings=True,  # XLA refusing a shape (out of HBM) is a finding
        )
        if record is None:
            continue
        samples.append(
            CompileSample(
                token_bucket=t,
                request_bucket=record["request_bucket"],
                cold_s=max(record["cold"], 0.0),
                optimal_seconds=record["optimal_seconds"],
                unpriced_ops=record["unpriced_ops"],
                estimated_step_s=record["optimal_seconds"] or None,
                flops=record["flops"],
                bytes_accessed=record["bytes"],
                collective_bytes=record["collective_bytes"],
                peak_hbm_bytes=record["peak_hbm"],
            )
        )
        on_point(f"tpu-aot:serving:{t}", f"cold compile {record['cold']:.1f} s")
    hbm = hw.memory_bytes
    peaks = [x.peak_hbm_bytes for x in samples if x.peak_hbm_bytes]
    if not samples:
        fits, reason = False, "no bucket compiled at full depth: " + "; ".join(skipped)
    elif max(peaks, default=0) > hbm:
        fits, reason = (
            False,
            f"peak {max(peaks) / 2**30:.1f} GiB per chip over the {hbm / 2**30:.1f} GiB of HBM",
        )
    else:
        fits, reason = True, ""
    device_kind = f"{topology.devices[0].device_kind} x{tp} (AOT from {cpu_model()})"
    notes = (
        f"the serving step (calibrate/tpu_step.py) at {arch.num_layers} layers per token bucket, compiled cold "
        f"by libtpu {libtpu_version()} on this host; warm-cache times need a TPU host"
        + (f"; not compiled: {', '.join(skipped)}" if skipped else "")
    )
    return CompileSection(
        provenance=provenance("aot-compiled", "tpu-aot", device_kind, notes),
        target=f"{host} (AOT)",
        layers_measured=[arch.num_layers],
        tensor_parallel_size=tp,
        topology=topology_name(host, tp),
        compile_host=CompileHost(
            cpu=cpu_model(), logical_cpus=os.cpu_count() or 1, reference_compile_s=reference_s
        )
        if math.isfinite(reference_s)
        else None,
        fits_hbm=fits,
        fit_reason=reason,
        samples=samples,
    )
