"""`calibrate --method kernels`: time servesim's Pallas attention kernel against its jnp reference on this
host's TPU, over the attention shapes a simulated traffic mix produces, and write a kernels section.

Shapes come from the model's real step mix: ShareGPT-like requests arriving at a moderate rate are run
through the pure V1 scheduler at vLLM's defaults for the host (no step costs needed: only which sequences
share a step, with how many new tokens and how much context). Steps are sorted into decode-only,
prefill-only and mixed, and a spread of each is timed. For every shape: kernel and reference seconds
(median of repeats, one layer, one chip), achieved HBM bandwidth (MBU) and FLOP utilisation against the
datasheet, and a per-layer fit the simulator can use (`cost_model.attention: kernel`).

On anything but a TPU this refuses: the Pallas TPU kernel runs elsewhere only in interpret mode, a Python
emulation whose timings say nothing about a TPU (tests/test_kernels.py checks its correctness on CPU).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import partial

import numpy as np

from sim.architecture import ModelArchitecture
from sim.cost.base import StepBatch
from sim.errors import InputError
from sim.hardware import HardwareSpec
from sim.profile import KernelSample, KernelSection

CASES = ("decode", "prefill", "mixed")


@dataclass(frozen=True)
class AttentionCall:
    """One step's attention: per sequence, new query tokens and total context (new tokens included)."""

    case: str
    q_lens: tuple[int, ...]
    kv_lens: tuple[int, ...]

    @property
    def num_tokens(self) -> int:
        return sum(self.q_lens)

    @property
    def attention_pairs(self) -> int:
        return sum(q * kv - q * (q - 1) // 2 for q, kv in zip(self.q_lens, self.kv_lens, strict=True))


def call_from_batch(batch: StepBatch) -> AttentionCall:
    decodes = batch.num_decode_seqs
    q_lens = [1] * decodes + list(batch.prefill_new_tokens)
    per_decode = batch.decode_context_tokens // decodes if decodes else 0
    kv_lens = [max(1, per_decode)] * decodes + list(batch.prefill_context_tokens)
    if not batch.prefill_new_tokens:
        case = "decode"
    elif decodes == 0:
        case = "prefill"
    else:
        case = "mixed"
    return AttentionCall(case, tuple(q_lens), tuple(kv_lens))


def traffic_scenario(model: str, host: str, *, num_requests: int, seed: int = 0):
    """A resolved ShareGPT-like scenario at vLLM's defaults for host: the mix kernel shapes come from."""
    from sim.loader import load_scenario_dict
    from sim.resolve import resolve

    return resolve(
        load_scenario_dict(
            {
                "name": "kernel-shapes",
                "model": model,
                "hardware": host,
                "engine": {"max_model_len": 4096},
                "workload": {
                    "lengths": {"kind": "sharegpt_like", "max_prompt_len": 2048},
                    "arrivals": {"process": "gamma", "rate": 20, "burstiness": 0.5},
                },
                "num_requests": num_requests,
                "seed": seed,
            }
        )
    )


def traffic_calls(resolved, *, per_case: int) -> list[AttentionCall]:
    """Attention calls of the scenario's traffic through the pure V1 scheduler, per_case of each kind spread
    over their sizes (smallest to largest)."""
    from sim.replica.request import RequestState
    from sim.replica.scheduler import Scheduler, SchedulerConfig
    from sim.traffic.workload import build_workload

    e = resolved.engine
    seed = resolved.seed
    sched = Scheduler(
        SchedulerConfig(
            e.max_num_seqs,
            e.max_num_batched_tokens,
            e.block_size,
            resolved.memory.num_blocks,
            e.enable_chunked_prefill,
        )
    )
    workload = build_workload(resolved.workload, seed)
    pending = deque(
        RequestState(i, float(t), int(p), int(min(o, e.max_model_len - p)))
        for i, (t, p, o) in enumerate(
            zip(workload.arrival_s, workload.prompt_tokens, workload.output_tokens, strict=True)
        )
        if p < e.max_model_len
    )
    step_s, now = 0.02, 0.0  # a nominal step time only paces arrivals
    calls: dict[str, list[AttentionCall]] = {c: [] for c in CASES}
    while pending or sched.has_work():
        while pending and pending[0].arrival_s <= now:
            sched.add_request(pending.popleft())
        if sched.has_work():
            plan = sched.schedule()
            if plan.batch.num_tokens:
                call = call_from_batch(plan.batch)
                calls[call.case].append(call)
            sched.update_from_step(plan, now + step_s)
        now += step_s
    chosen = []
    for case in CASES:
        found = sorted(calls[case], key=lambda c: (c.num_tokens, sum(c.kv_lens)))
        if found:
            picks = np.unique(np.linspace(0, len(found) - 1, min(per_case, len(found))).astype(int))
            chosen += [found[i] for i in picks]
    return chosen


def kernel_inputs(
    call: AttentionCall,
    *,
    num_q_heads: int,
    num_kv_heads: int,
    head_dim: int,
    page_size: int,
    dtype,
    seed: int = 0,
):
    """Random q and pages shaped for one call, with a shuffled page table (pages are never contiguous in a
    running server)."""
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    s = len(call.q_lens)
    pages_per_seq = max(-(-kv // page_size) for kv in call.kv_lens)
    num_pages = s * pages_per_seq
    table = rng.permutation(num_pages).reshape(s, pages_per_seq).astype(np.int32)
    cu = np.concatenate([[0], np.cumsum(call.q_lens)]).astype(np.int32)
    t = call.num_tokens
    q = jnp.asarray(rng.standard_normal((t, num_q_heads, head_dim)), dtype)
    k = jnp.asarray(rng.standard_normal((num_kv_heads, num_pages, page_size, head_dim)), dtype)
    v = jnp.asarray(rng.standard_normal((num_kv_heads, num_pages, page_size, head_dim)), dtype)
    return (
        q,
        k,
        v,
        jnp.asarray(call.kv_lens, jnp.int32),
        jnp.asarray(table),
        jnp.asarray(cu),
        jnp.asarray([s], jnp.int32),
    )


def traffic(call: AttentionCall, *, num_q_heads: int, num_kv_heads: int, head_dim: int, dtype_bytes: int):
    """(HBM bytes, FLOPs) of one call: K and V of every context token read once, q read, output written."""
    kv = sum(call.kv_lens) * 2 * num_kv_heads * head_dim * dtype_bytes
    qo = 2 * call.num_tokens * num_q_heads * head_dim * dtype_bytes
    return kv + qo, 4.0 * call.attention_pairs * num_q_heads * head_dim


def require_tpu(host: str):
    from calibrate.xla_compile import require_jax

    jax = require_jax()
    platform = jax.devices()[0].platform
    if platform != "tpu":
        raise InputError(
            f"the kernels method times Pallas TPU kernels and needs a TPU backend; this host's JAX backend is "
            f"'{platform}'. Elsewhere they run only in interpret mode, a Python emulation whose timings mean "
            "nothing for a TPU (their correctness is tested on CPU: pytest tests/test_kernels.py)",
            "--method",
        )
    return jax


def measure_kernels(
    arch: ModelArchitecture, hw: HardwareSpec, *, host: str, quick: bool, store, point_timeout, on_point
) -> KernelSection:
    jax = require_tpu(host)
    import jax.numpy as jnp

    from calibrate.fit import fit_kernel
    from calibrate.store import measure_point
    from calibrate.timing import median_time
    from kernels.block_sizes import BlockSizes
    from kernels.dispatch import tpu_generation
    from kernels.ragged_paged_attention.kernel import ragged_paged_attention_kernel
    from kernels.ragged_paged_attention.reference import ragged_paged_attention_reference
    from sim.live.environment import provenance

    resolved = traffic_scenario(arch.name, host, num_requests=100 if quick else 400)
    page_size = resolved.engine.block_size
    dtype = jnp.bfloat16 if arch.dtype_bytes == 2 else jnp.float32
    hq, hkv, d = arch.num_attention_heads, arch.num_kv_heads, arch.head_dim
    generation = tpu_generation()
    if generation is None:
        raise InputError("the kernels method needs a TPU of a known generation (v5e, v6e, v5p)", "--host")
    blocks = BlockSizes.default(generation, group=hq // hkv, page_size=page_size)
    kernel = jax.jit(lambda *a: ragged_paged_attention_kernel(*a, block_sizes=blocks))
    reference = jax.jit(ragged_paged_attention_reference)
    calls = traffic_calls(resolved, per_case=3 if quick else 8)
    samples: list[KernelSample] = []
    skipped: list[str] = []
    for i, call in enumerate(calls):
        key = f"kernels:{call.case}:{call.num_tokens}:{len(call.q_lens)}:{sum(call.kv_lens)}"

        def measure(call=call, i=i):
            args = kernel_inputs(
                call, num_q_heads=hq, num_kv_heads=hkv, head_dim=d, page_size=page_size, dtype=dtype, seed=i
            )
            times = {}
            for name, fn in (("kernel", kernel), ("reference", reference)):
                run = partial(_block, jax, fn, args)
                times[name] = median_time(run, repeats=5 if quick else 20, warmup=2)
            hbm, flops = traffic(
                call, num_q_heads=hq, num_kv_heads=hkv, head_dim=d, dtype_bytes=arch.dtype_bytes
            )
            return {
                "kernel_s": times["kernel"],
                "reference_s": times["reference"],
                "hbm_bytes": hbm,
                "flops": flops,
            }

        record = measure_point(
            store,
            key,
            measure,
            point_timeout=point_timeout,
            skipped=skipped,
            on_point=on_point,
            failures_are_findings=True,
        )
        if record is None:
            continue
        samples.append(
            KernelSample(
                case=call.case,
                num_tokens=call.num_tokens,
                num_seqs=len(call.q_lens),
                attention_pairs=call.attention_pairs,
                kv_read_tokens=sum(call.kv_lens),
                kernel_s=record["kernel_s"],
                reference_s=record["reference_s"],
                hbm_bytes=record["hbm_bytes"],
                flops=record["flops"],
                mbu=record["hbm_bytes"] / record["kernel_s"] / hw.memory_bandwidth_bytes_s,
                flop_utilization=record["flops"] / record["kernel_s"] / hw.peak_flops,
            )
        )
        on_point(
            key, f"kernel {record['kernel_s'] * 1e6:.0f} us, reference {record['reference_s'] * 1e6:.0f} us"
        )
    device = jax.devices()[0]
    notes = "; ".join(["per layer, one chip, TP1"] + ([f"skipped: {', '.join(skipped)}"] if skipped else []))
    return KernelSection(
        provenance=provenance("measured", "kernels", f"{device.device_kind} ({generation})", notes=notes),
        implementation="servesim ragged_paged_attention (Pallas TPU)",
        block_sizes={"block_q": blocks.block_q, "pages_per_block": blocks.pages_per_block},
        dtype=str(jnp.dtype(dtype)),
        num_q_heads=hq,
        num_kv_heads=hkv,
        head_dim=d,
        page_size=page_size,
        samples=samples,
        fit=fit_kernel(samples),
    )


def _block(jax, fn, args) -> None:
    """One call of fn, waited for (device work is asynchronous)."""
    jax.block_until_ready(fn(*args))
