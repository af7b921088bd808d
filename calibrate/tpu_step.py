"""One engine step of vLLM on TPU (tpu-inference's shape of it) as a JAX program, sharded over a TP mesh.

The step a TPU replica compiles per (token bucket, request bucket) and runs on every engine step:

  tokens [T] -> embedding -> per layer:
      RMSNorm -> Q/K/V projections (heads split over the mesh) -> rotary
      -> ragged paged attention (kernels/ragged_paged_attention: decode, prefill and mixed sequences of the
         step in one call; the step's new K/V rows written into their pages by the same call, as RPA v3 does)
      -> output projection (rows split: the partial sums are all-reduced) -> RMSNorm
      -> gated MLP (columns, then rows split: all-reduced), or router + top-k experts by grouped matmul
  -> final RMSNorm of each sequence's last token -> LM head (vocabulary split) -> sampling (temperature,
     Gumbel-max over the gathered logits)

T is the token bucket (padded tokens), S the request bucket; the page table holds each sequence's pages.
The attention call runs per chip under `shard_map` (a Pallas call is not partitioned automatically); the
projections are partitioned by XLA from the parameter shardings, which inserts the all-reduces the way vLLM's
TP layers issue them. Parameters and caches are abstract (`jax.ShapeDtypeStruct` with a `NamedSharding`):
nothing is allocated, the program is only compiled.

The compiler prices what it can see: matmuls, fusions and collectives get its own per-op estimates, but a
Pallas (Mosaic) call is opaque to it. Measured with libtpu 0.0.42: a Pallas call is charged exactly the
`pl.CostEstimate` it carries (FLOPs and bytes at the chip's peak rates) and nothing for its operands -- a
decode batch reading 537 MB of KV pages without an estimate is priced as free; and a few non-fused
gathers are reported as -1 s each ("unknown") inside `optimal_seconds`. So a step's estimate is assembled
from the whole serving step compiled at depths 1 and 2 (the difference is one layer, the rest embedding,
head and sampler), with the attention call carrying the estimate of its real work (`attention_estimate`:
FLOPs of the causal pairs, bytes of the KV read, the queries, the output and the new rows written), so a
batch of other contexts costs the same minus one attention estimate plus its own. At full depth the same
program gives the compile time, peak HBM and collectives.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from sim.architecture import ModelArchitecture

PAGE_SIZE = 16  # tokens per KV page: the simulator's TPU page size for head_dim 128 (sim/hardware_kinds.py)


def _jax():
    import jax
    import jax.numpy as jnp

    return jax, jnp


@dataclass(frozen=True)
class StepBatch:
    """The sequences of one step: new tokens and context (tokens in the cache after the step) of each."""

    new_tokens: tuple[int, ...]
    contexts: tuple[int, ...]
    token_bucket: int  # T: padded tokens the program is compiled for
    request_bucket: int  # S: padded sequences

    @property
    def num_tokens(self) -> int:
        return sum(self.new_tokens)

    @property
    def num_seqs(self) -> int:
        return len(self.new_tokens)

    @property
    def attention_pairs(self) -> int:
        """Causal (query, key) pairs: each new token attends to everything before it and itself."""
        return sum(
            n * (c - n) + n * (n + 1) // 2 for n, c in zip(self.new_tokens, self.contexts, strict=True)
        )

    @property
    def kv_read_tokens(self) -> int:
        return sum(self.contexts)

    @property
    def pages_per_seq(self) -> int:
        return max(1, -(-max(self.contexts) // PAGE_SIZE))

    @property
    def num_pages(self) -> int:
        """Pages the batch uses: the cache is sized to the batch."""
        return max(1, sum(-(-c // PAGE_SIZE) for c in self.contexts))


def batch_for(kind: str, token_bucket: int, request_bucket: int, context: int) -> StepBatch:
    """A batch of a step kind filling its buckets: `decode` = min(T, S) sequences of one token at `context`;
    `prefill` = one chunk of T tokens ending at max(context, T); `mixed` = a chunk plus decodes at
    `context` (half the bucket, at most S - 1 of them)."""
    if kind == "decode":
        n = min(request_bucket, token_bucket)
        return StepBatch((1,) * n, (context,) * n, token_bucket, request_bucket)
    if kind == "prefill":
        return StepBatch((token_bucket,), (max(context, token_bucket),), token_bucket, request_bucket)
    decodes = min(request_bucket - 1, token_bucket // 2)
    chunk = token_bucket - decodes
    return StepBatch(
        (chunk, *(1,) * decodes), (max(context, chunk), *(context,) * decodes), token_bucket, request_bucket
    )


@dataclass(frozen=True)
class Mesh:
    tp: int
    mesh: Any  # jax.sharding.Mesh over the topology's first tp devices, axis "model"


def make_mesh(topology, tp: int) -> Mesh:
    jax, _ = _jax()
    import numpy as np

    devices = topology.devices[:tp]
    if len(devices) < tp:
        raise ValueError(f"the topology has {len(topology.devices)} chips, TP{tp} needs {tp}")
    return Mesh(tp, jax.sharding.Mesh(np.array(devices), ("model",)))


def _spec(mesh: Mesh, *axes):
    from jax.sharding import NamedSharding, PartitionSpec

    return NamedSharding(mesh.mesh, PartitionSpec(*axes))


def param_specs(arch: ModelArchitecture, layers: int, mesh: Mesh, weight_dtype) -> dict:
    """Abstract parameters with their TP shardings (vocabulary-parallel LM head, replicated embedding)."""
    jax, jnp = _jax()
    h, d = arch.hidden_size, arch.head_dim
    q, kv = arch.num_attention_heads * d, arch.num_kv_heads * d

    def a(shape, *axes, dtype=None):
        return jax.ShapeDtypeStruct(shape, dtype or weight_dtype, sharding=_spec(mesh, *axes))

    def layer() -> dict:
        p = {
            "ln1": a((h,), None, dtype=jnp.bfloat16),
            "wq": a((h, q), None, "model"),
            "wk": a((h, kv), None, "model"),
            "wv": a((h, kv), None, "model"),
            "wo": a((q, h), "model", None),
            "ln2": a((h,), None, dtype=jnp.bfloat16),
        }
        if arch.is_moe:
            e, inter = arch.num_experts, arch.intermediate_size
            p |= {
                "router": a((h, e), None, None, dtype=jnp.bfloat16),
                "wg": a((e, h, inter), None, None, "model"),
                "wu": a((e, h, inter), None, None, "model"),
                "wd": a((e, inter, h), None, "model", None),
            }
        else:
            inter = arch.intermediate_size
            p |= {"wg": a((h, inter), None, "model"), "wu": a((h, inter), None, "model")}
            p["wd"] = a((inter, h), "model", None)
        return p

    return {
        "embed": a((arch.vocab_size, h), None, None, dtype=jnp.bfloat16),
        "layers": [layer() for _ in range(layers)],
        "norm": a((h,), None, dtype=jnp.bfloat16),
        "lm_head": a((h, arch.vocab_size), None, "model", dtype=jnp.bfloat16),
    }


def cache_specs(arch: ModelArchitecture, layers: int, batch: StepBatch, mesh: Mesh, kv_dtype) -> list:
    jax, _ = _jax()
    shape = (arch.num_kv_heads, batch.num_pages, PAGE_SIZE, arch.head_dim)
    one = jax.ShapeDtypeStruct(shape, kv_dtype, sharding=_spec(mesh, "model", None, None, None))
    return [(one, one) for _ in range(layers)]


def input_specs(batch: StepBatch, mesh: Mesh) -> dict:
    jax, jnp = _jax()
    t, s = batch.token_bucket, batch.request_bucket

    def r(shape, dtype=jnp.int32):
        return jax.ShapeDtypeStruct(shape, dtype, sharding=_spec(mesh, *([None] * len(shape))))

    return {
        "tokens": r((t,)),
        "positions": r((t,)),
        "kv_lens": r((s,)),
        "page_indices": r((s, batch.pages_per_seq)),
        "cu_q_lens": r((s + 1,)),
        "num_seqs": r((1,)),
        "slot_mapping": r((t,)),
        "logits_indices": r((s,)),
        "rng": r((2,), jnp.uint32),
    }


def attention_estimate(arch: ModelArchitecture, batch: StepBatch, tp: int, kv_bytes: float):
    """The Pallas call's work per chip, as `pl.CostEstimate`: FLOPs of QK^T and PV over the causal pairs,
    one exponential per pair and head, and the bytes it moves -- the KV pages of every sequence's context,
    the step's new K/V rows written into the cache, the queries and the outputs."""
    from jax.experimental import pallas as pl

    heads = arch.num_attention_heads // tp
    kv_heads = max(1, arch.num_kv_heads // tp)
    pairs = batch.attention_pairs
    row = kv_heads * arch.head_dim * 2 * kv_bytes  # K and V of one token
    queries = 2 * batch.num_tokens * heads * arch.head_dim * 2  # q in, out back, bf16
    moved = (batch.kv_read_tokens + batch.num_tokens) * row + queries
    return pl.CostEstimate(
        flops=int(4 * pairs * heads * arch.head_dim),
        transcendentals=int(pairs * heads),
        bytes_accessed=int(moved),
    )


class _Parts:
    """The pieces of the step, shared by the programs below."""

    def __init__(self, arch: ModelArchitecture, mesh: Mesh):
        self.arch, self.mesh = arch, mesh
        self.jax, self.jnp = _jax()

    def rmsnorm(self, x, w):
        jax, jnp = self.jax, self.jnp
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + 1e-6)
        return y.astype(x.dtype) * w

    def rotary(self, x, positions):  # x [T, heads, d]
        jnp = self.jnp
        half = self.arch.head_dim // 2
        freq = 500000.0 ** (-jnp.arange(half, dtype=jnp.float32) / half)
        angle = positions.astype(jnp.float32)[:, None] * freq[None, :]
        cos, sin = jnp.cos(angle)[:, None, :], jnp.sin(angle)[:, None, :]
        x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
        return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)

    def qkv(self, p, x, positions):
        a, t = self.arch, x.shape[0]
        h = self.rmsnorm(x, p["ln1"])
        q = self.rotary((h @ p["wq"]).reshape(t, a.num_attention_heads, a.head_dim), positions)
        k = self.rotary((h @ p["wk"]).reshape(t, a.num_kv_heads, a.head_dim), positions)
        v = (h @ p["wv"]).reshape(t, a.num_kv_heads, a.head_dim)
        return q, k, v

    def after_attention(self, p, x, out):
        t = x.shape[0]
        x = x + out.reshape(t, -1).astype(x.dtype) @ p["wo"]
        return x + self.mlp(p, self.rmsnorm(x, p["ln2"]))

    def mlp(self, p, x):
        jax, jnp, a = self.jax, self.jnp, self.arch
        if not a.is_moe:
            return (jax.nn.silu(x @ p["wg"]) * (x @ p["wu"])) @ p["wd"]
        t, k = x.shape[0], a.num_experts_per_token
        logits = (x @ p["router"]).astype(jnp.float32)
        weights, experts = jax.lax.top_k(jax.nn.softmax(logits, axis=-1), k)  # [T, k]
        order = jnp.argsort(experts.reshape(-1))
        rows = x[order // k]  # [T*k, h], grouped by expert
        sizes = jnp.bincount(experts.reshape(-1), length=a.num_experts).astype(jnp.int32)
        gate = jax.lax.ragged_dot(rows, p["wg"], sizes)
        up = jax.lax.ragged_dot(rows, p["wu"], sizes)
        out = jax.lax.ragged_dot(jax.nn.silu(gate) * up, p["wd"], sizes)  # [T*k, h]
        combined = jnp.zeros((t * k, x.shape[1]), out.dtype).at[order].set(out)
        return (combined.reshape(t, k, -1) * weights[..., None].astype(out.dtype)).sum(axis=1)

    def head(self, params, x, inputs):
        jax, jnp = self.jax, self.jnp
        last = self.rmsnorm(x[inputs["logits_indices"]], params["norm"])  # [S, h]
        logits = (last @ params["lm_head"]).astype(jnp.float32)  # [S, vocab], vocabulary split
        gumbel = jax.random.gumbel(jax.random.wrap_key_data(inputs["rng"]), logits.shape, jnp.float32)
        return jnp.argmax(logits + gumbel, axis=-1)

    def attention(self, batch: StepBatch, generation: str, kv_bytes: float):
        """The ragged paged attention call with its cache write, per chip (shard_map over the KV heads)."""
        jax = self.jax
        from jax.sharding import PartitionSpec as P

        from kernels.block_sizes import BlockSizes, sublane_tile
        from kernels.ragged_paged_attention.kernel import ragged_paged_attention_kernel

        a, tp = self.arch, self.mesh.tp
        local_heads, local_kv = a.num_attention_heads // tp, max(1, a.num_kv_heads // tp)
        group = local_heads // local_kv
        default = BlockSizes.default(generation, group=group, page_size=PAGE_SIZE)
        # A bucket that can hold one token per sequence (T <= S) is compiled with the smallest legal query
        # block, as decode-specialised kernels do: one decode token per work item wastes the rest of it.
        block_q = (
            max(1, sublane_tile(2) // group)
            if batch.token_bucket <= batch.request_bucket
            else default.block_q
        )
        blocks = BlockSizes(block_q, min(default.pages_per_block, batch.pages_per_seq))
        estimate = attention_estimate(a, batch, tp, kv_bytes)

        def local(q, k_pages, v_pages, kv_lens, page_indices, cu_q_lens, num_seqs, k_new, v_new, slots):
            return ragged_paged_attention_kernel(
                q,
                k_pages,
                v_pages,
                kv_lens,
                page_indices,
                cu_q_lens,
                num_seqs,
                k_new,
                v_new,
                slots,
                block_sizes=blocks,
                fused_update=True,
                cost_estimate=estimate,
            )

        heads, rep = P(None, "model", None), P()
        return jax.shard_map(
            local,
            mesh=self.mesh.mesh,
            in_specs=(heads, P("model"), P("model"), rep, rep, rep, rep, heads, heads, rep),
            out_specs=(heads, P("model"), P("model")),
            check_vma=False,
        )


def serving_program(arch: ModelArchitecture, mesh: Mesh, batch: StepBatch, generation: str, kv_bytes: float):
    """The whole step: step(params, caches, inputs) -> (sampled tokens [S], caches)."""
    parts = _Parts(arch, mesh)
    attend = parts.attention(batch, generation, kv_bytes)

    def step(params, caches, inputs):
        x = params["embed"][inputs["tokens"]]
        new_caches = []
        meta = (inputs["kv_lens"], inputs["page_indices"], inputs["cu_q_lens"], inputs["num_seqs"])
        for p, (k_pages, v_pages) in zip(params["layers"], caches, strict=True):
            q, k, v = parts.qkv(p, x, inputs["positions"])
            new = (k.astype(k_pages.dtype), v.astype(v_pages.dtype), inputs["slot_mapping"])
            out, k_pages, v_pages = attend(q, k_pages, v_pages, *meta, *new)
            new_caches.append((k_pages, v_pages))
            x = parts.after_attention(p, x, out)
        return parts.head(params, x, inputs), new_caches

    return step


def serving_args(arch, mesh, batch, layers, weight_dtype, kv_dtype) -> tuple:
    return (
        param_specs(arch, layers, mesh, weight_dtype),
        cache_specs(arch, layers, batch, mesh, kv_dtype),
        input_specs(batch, mesh),
    )


def attention_program(
    arch: ModelArchitecture, mesh: Mesh, batch: StepBatch, generation: str, kv_bytes: float
):
    """The attention call alone, carrying the estimate of the batch's work."""
    return _Parts(arch, mesh).attention(batch, generation, kv_bytes)


def attention_args(arch, mesh, batch, kv_dtype) -> tuple:
    jax, jnp = _jax()
    t = batch.token_bucket
    inputs = input_specs(batch, mesh)
    heads = _spec(mesh, None, "model", None)
    q = jax.ShapeDtypeStruct((t, arch.num_attention_heads, arch.head_dim), jnp.bfloat16, sharding=heads)
    kv = jax.ShapeDtypeStruct((t, arch.num_kv_heads, arch.head_dim), kv_dtype, sharding=heads)
    ((k_pages, v_pages),) = cache_specs(arch, 1, batch, mesh, kv_dtype)
    meta = (inputs["kv_lens"], inputs["page_indices"], inputs["cu_q_lens"], inputs["num_seqs"])
    return (q, k_pages, v_pages, *meta, kv, kv, inputs["slot_mapping"])


def compile_program(fn, args, donate: tuple[int, ...] = ()):
    """(compile wall seconds, compiled executable)."""
    import time

    jax, _ = _jax()
    start = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile()
    return time.perf_counter() - start, compiled


@dataclass(frozen=True)
class CompilerCost:
    """The compiler's numbers for one program on one chip."""

    optimal_seconds: float  # its estimate, less the ops it could not price
    unpriced_ops: int  # ops it reported as -1 s ("unknown"), left out of optimal_seconds
    flops: float
    bytes_accessed: float


def cost_of(compiled) -> CompilerCost:
    """cost_analysis() of a compiled program. libtpu reports an op it cannot price as -1 s inside the sum
    (seen for non-fused gathers); those are counted and taken out, so the estimate covers what it priced."""
    cost = compiled.cost_analysis() or {}
    if isinstance(cost, list):
        cost = cost[0] if cost else {}
    optimal = float(cost.get("optimal_seconds", math.nan))
    unpriced = math.ceil(-optimal) if optimal < 0 else 0
    return CompilerCost(
        optimal + unpriced, unpriced, float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
    )


_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_DTYPE_BYTES = {"bf16": 2, "f16": 2, "f32": 4, "s32": 4, "u32": 4, "s8": 1, "u8": 1, "f8e4m3fn": 1, "pred": 1}
_COLLECTIVE_OP = re.compile(
    r"=\s*\(?([a-z0-9]+)\[([0-9,]*)\][^=]*?\b(" + "|".join(_COLLECTIVES) + r")(-start)?\("
)


def collective_bytes(compiled) -> int:
    """Bytes of the results of the collectives in the compiled program (per chip, one execution)."""
    total = 0
    for line in compiled.as_text().splitlines():
        match = _COLLECTIVE_OP.search(line)
        if match is None:
            continue
        dims = match.group(2)
        size = math.prod(int(x) for x in dims.split(",") if x) if dims else 1
        total += size * _DTYPE_BYTES.get(match.group(1), 2)
    return total


def peak_hbm_bytes(compiled) -> int | None:
    """Arguments + outputs + temporaries - aliased + code: the program's footprint on one chip."""
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    return int(
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
        + stats.generated_code_size_in_bytes
    )
