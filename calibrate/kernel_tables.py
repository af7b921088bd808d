"""`calibrate --method kernel-tables`: vLLM engine steps composed from NVIDIA's measured per-kernel latency
tables, on any CPU host.

PyPI `aiconfigurator-core` (Apache-2.0; extra `servesim[gpu-data]`) ships latency tables that NVIDIA measured
on real GPUs under named vLLM versions: GEMMs by (m, n, k, dtype), context and generation attention by
(batch, length, heads, KV heads, head_dim, KV dtype), vLLM's custom all-reduce and NCCL collectives by
message size and GPU count, fused MoE by (tokens, experts, top-k, TP, EP). This module reads them from the
installed package (nothing is copied or downloaded) and composes one engine step of vLLM for a model, GPU,
tensor-parallel size and precision, the way vLLM runs it:

  per layer   QKV projection + attention + output projection + MLP (gate/up, down) or fused MoE, and the
              small kernels between them (2 fused add+RMSNorms, rotary, KV-cache write, SiLU-and-mul);
  per step    LM head on the sampled rows, the sampler, and vLLM's per-step host time;
  separately  the TP all-reduces (two per layer): the measured all-reduce of the group's size, chosen as
              vLLM chooses (custom all-reduce for 2 GPUs, or for up to 8 fully NVLink-connected ones, when
              the message is under 8 MiB; NCCL otherwise), written as the profile's collectives section so
              the simulator prices them by message size.

Interpolation (documented per table): GEMMs linear in m between measured m, log-linear in n and k between
grid points; attention log-log in batch and length (a prefill chunk of n new tokens after p computed is
timed as a fresh prefill with the same number of (query, key) pairs); MoE and collectives log-log in tokens
or bytes. Beyond the measured grid a value is scaled in proportion to the work and flagged; every flagged
lookup is counted and reported.

Composed steps on a grid of batch shapes become the profile's step samples (same format as --method vllm),
fitted by sim/profile.py's StepFit with token knots. A held-out check re-interpolates measured table points
from their neighbours without them and reports the error, and the fit's own held-out error is reported too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sim.architecture import ModelArchitecture
from sim.errors import InputError
from sim.hardware import HardwareSpec
from sim.profile import CollectiveSample, InterpolationCheck, StepSample

DISTRIBUTION = "aiconfigurator-core"
INSTALL_HINT = (
    'pip install "servesim[gpu-data]" (aiconfigurator-core 0.12.0: NVIDIA\'s measured kernel tables)'
)


# GEMM kernels vLLM's linear layers run per weight precision (the tables' kernel_source), preferred first
GEMM_KERNELS = {
    "bfloat16": ("torch.nn.functional.linear", "vllm_default"),
    "fp8": ("CutlassFP8ScaledMMLinearKernel",),  # per-tensor fp8 checkpoints
    "nvfp4": ("FlashInferCutlassNvFp4LinearKernel", "FlashInferCuteDslNvFp4LinearKernel"),
}
# Attention kernels, preferred first, as vLLM's backend selection picks them per GPU generation: FlashAttention
# 3 on Hopper, FlashAttention 2 on Ampere/Ada/Blackwell workstation parts, FlashInfer (TRT-LLM kernels) on
# datacenter Blackwell; FlashInfer for an fp8 KV cache where FlashAttention 2 has none. The tables hold only
# the kernels measured on that GPU, so the first one present for the KV dtype is the one vLLM would run.
ATTENTION_KERNELS = {
    "context_attention": (
        "vllm_flash_attn_fa3",
        "vllm_flash_attn_fa2",
        "vllm_flash_attn",
        "vllm_flashinfer_trtllmprefill",
        "vllm_flashinfer_fiprefill",
        "vllm_flashinfer",
        "vllm_triton_attn",
    ),
    "generation_attention": (
        "vllm_flash_attn_fa3",
        "vllm_flash_attn_fa2",
        "vllm_flash_attn",
        "vllm_flashinfer_trtllmdecode",
        "vllm_flashinfer_fidecode",
        "vllm_flashinfer",
        "vllm_triton_attn",
    ),
}
MOE_DTYPES = {"bfloat16": "bfloat16", "fp8": "fp8", "nvfp4": "nvfp4"}
CUSTOM_ALLREDUCE_MAX_BYTES = 8 * 1024 * 1024  # vLLM CustomAllreduce max_size (docs/references.md)
CUSTOM_ALLREDUCE_SIZES = (2, 4, 6, 8)
# vLLM's per-step host time with async scheduling (docs/references.md#vllm-per-step-host-time)
HOST_STEP_S = 160e-6
SMALL_KERNELS_PER_LAYER = 5  # 2 fused add+RMSNorm, rotary, KV-cache write, SiLU-and-mul


def hosts_with_tables() -> list[str]:
    """Catalog GPUs whose entry names an aiconfigurator-core system folder (sim/catalog/hardware.yaml)."""
    from sim.catalog import hardware_entries

    return sorted(name for name, entry in hardware_entries().items() if entry.get("kernel_tables"))


def systems_dir() -> Path:
    try:
        import aiconfigurator_core
    except ImportError:
        raise InputError(f"the kernel-tables method needs {INSTALL_HINT}", "--method") from None
    return Path(aiconfigurator_core.__file__).parent / "systems"


def package_version() -> str:
    import importlib.metadata

    return importlib.metadata.version(DISTRIBUTION)


def _version_key(text: str) -> tuple:
    parts = []
    for piece in text.replace("rc", ".").split("."):
        parts.append(int(piece) if piece.isdigit() else -1)
    return tuple(parts)


def pick_version(op_dir: Path, wanted: str) -> str:
    """The table version closest to the wanted vLLM version (the same one when it was measured)."""
    versions = sorted(
        (p.name for p in op_dir.iterdir() if p.is_dir() and any(p.glob("*.parquet"))), key=_version_key
    )
    if not versions:
        raise InputError(f"no vLLM tables under {op_dir}", "--host")
    if wanted in versions:
        return wanted
    target = _version_key(wanted)
    return min(
        versions,
        key=lambda v: (abs(_version_key(v)[0] - target[0]) * 1000 + abs(_version_key(v)[1] - target[1]), v),
    )


@dataclass(frozen=True)
class TableSource:
    """Which measured table answered which part of a step."""

    op: str
    path: str  # inside the aiconfigurator_core package
    vllm_version: str
    kernel: str

    def describe(self) -> str:
        return f"{self.kernel} ({self.path}, vLLM {self.vllm_version})"


@dataclass
class Lookups:
    """How many lookups answered inside the measured grid, and how many were scaled beyond it."""

    inside: int = 0
    beyond: dict[str, int] = field(default_factory=dict)

    def note(self, what: str, extrapolated: bool) -> None:
        if extrapolated:
            self.beyond[what] = self.beyond.get(what, 0) + 1
        else:
            self.inside += 1


def _loglog(xs: np.ndarray, ys: np.ndarray, x: float) -> tuple[float, bool]:
    """y at x, log-log linear between measured points; proportional to x beyond the largest, flat below the
    smallest (a kernel does not get faster than its smallest measurement)."""
    if x >= xs[-1]:
        return float(ys[-1] * x / xs[-1]), x > xs[-1]
    if x <= xs[0]:
        return float(ys[0]), x < xs[0]
    return float(np.exp(np.interp(math.log(x), np.log(xs), np.log(ys)))), False


class GemmTable:
    """Latency of an (m x k) @ (k x n) GEMM: linear in m between measured m, log-linear in n and k."""

    def __init__(self, frame: pd.DataFrame):
        self.ns = np.sort(frame["n"].unique())
        self.ks = np.sort(frame["k"].unique())
        self.curves: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for (n, k), rows in frame.groupby(["n", "k"]):
            rows = rows.sort_values("m")
            self.curves[(int(n), int(k))] = (
                rows["m"].to_numpy(float),
                rows["latency"].to_numpy(float) * 1e-3,
            )

    def _at_m(self, n: int, k: int, m: float) -> float | None:
        curve = self.curves.get((n, k))
        if curve is None:
            return None
        ms, ts = curve
        if m > ms[-1]:  # beyond the largest m: proportional to m along the last segment's line
            slope = (ts[-1] - ts[-2]) / (ms[-1] - ms[-2]) if len(ms) > 1 else ts[-1] / ms[-1]
            return float(ts[-1] + max(slope, 0.0) * (m - ms[-1]))
        return float(np.interp(m, ms, ts))

    def seconds(self, m: float, n: float, k: float) -> tuple[float, bool]:
        """(seconds, extrapolated) of one GEMM."""
        beyond = (
            m > self._max_m() or not (self.ns[0] <= n <= self.ns[-1]) or not (self.ks[0] <= k <= self.ks[-1])
        )
        nc, kc = min(max(n, self.ns[0]), self.ns[-1]), min(max(k, self.ks[0]), self.ks[-1])
        scale = (n / nc) * (k / kc)  # work beyond the grid, in proportion
        i = int(np.clip(np.searchsorted(self.ns, nc), 1, len(self.ns) - 1))
        j = int(np.clip(np.searchsorted(self.ks, kc), 1, len(self.ks) - 1))
        fn = (math.log(nc) - math.log(self.ns[i - 1])) / (math.log(self.ns[i]) - math.log(self.ns[i - 1]))
        fk = (math.log(kc) - math.log(self.ks[j - 1])) / (math.log(self.ks[j]) - math.log(self.ks[j - 1]))
        total, weight = 0.0, 0.0
        for ni, wn in ((self.ns[i - 1], 1 - fn), (self.ns[i], fn)):
            for kj, wk in ((self.ks[j - 1], 1 - fk), (self.ks[j], fk)):
                t = self._at_m(int(ni), int(kj), m)
                if t is not None and wn * wk > 0:
                    total += wn * wk * math.log(t)
                    weight += wn * wk
        if weight == 0:
            raise InputError(f"the GEMM table has no points near n={n:.0f}, k={k:.0f}", "--host")
        return math.exp(total / weight) * scale, beyond

    def _max_m(self) -> float:
        return max(ms[-1] for ms, _ in self.curves.values())


class Grid2DTable:
    """Latency over a (batch, length) grid, log-log bilinear; proportional to batch x length beyond it."""

    def __init__(self, frame: pd.DataFrame, length_column: str):
        pivot = frame.pivot_table(
            index="batch_size", columns=length_column, values="latency", aggfunc="median"
        )
        self.batches = pivot.index.to_numpy(float)
        self.lengths = pivot.columns.to_numpy(float)
        values = pivot.to_numpy(float) * 1e-3
        self.valid = ~np.isnan(values)
        self.logt = np.log(np.where(self.valid, values, 1.0))

    def seconds(self, batch: float, length: float) -> tuple[float, bool]:
        b = min(max(batch, self.batches[0]), self.batches[-1])
        s = min(max(length, self.lengths[0]), self.lengths[-1])
        beyond = batch > self.batches[-1] or length > self.lengths[-1]
        scale = (batch / b if batch > b else 1.0) * (length / s if length > s else 1.0)
        i = int(np.clip(np.searchsorted(self.batches, b), 1, len(self.batches) - 1))
        j = int(np.clip(np.searchsorted(self.lengths, s), 1, len(self.lengths) - 1))
        fb = _frac(b, self.batches[i - 1], self.batches[i])
        fs = _frac(s, self.lengths[j - 1], self.lengths[j])
        total = weight = 0.0
        for ii, wb in ((i - 1, 1 - fb), (i, fb)):
            for jj, ws in ((j - 1, 1 - fs), (j, fs)):
                if self.valid[ii, jj] and wb * ws > 0:
                    total += wb * ws * self.logt[ii, jj]
                    weight += wb * ws
        if weight == 0:  # the nearest measured cell
            cells = np.argwhere(self.valid)
            distance = np.abs(np.log(self.batches[cells[:, 0]] / b)) + np.abs(
                np.log(self.lengths[cells[:, 1]] / s)
            )
            ii, jj = cells[int(np.argmin(distance))]
            return float(np.exp(self.logt[ii, jj])) * scale * (b / self.batches[ii]) * (
                s / self.lengths[jj]
            ), True
        return float(np.exp(total / weight)) * scale, beyond


def _frac(x: float, lo: float, hi: float) -> float:
    return (math.log(x) - math.log(lo)) / (math.log(hi) - math.log(lo)) if hi > lo else 0.0


class CurveTable:
    """Latency over one size (tokens, bytes), log-log between measured sizes."""

    def __init__(self, sizes: np.ndarray, seconds: np.ndarray):
        order = np.argsort(sizes)
        self.sizes, self.times = sizes[order].astype(float), seconds[order].astype(float)

    def seconds(self, size: float) -> tuple[float, bool]:
        return _loglog(self.sizes, self.times, size)


@dataclass
class KernelTables:
    """The measured tables of one GPU that a model's steps need."""

    system: str
    gemm: GemmTable
    lm_head_gemm: GemmTable
    context: Grid2DTable
    generation: Grid2DTable
    moe: CurveTable | None
    allreduce: CurveTable | None  # the all-reduce vLLM would run for the TP group, by message bytes
    sources: dict[str, TableSource]
    kernel_floor_s: float  # the smallest measured kernels' median latency
    stream_bytes_s: float  # achieved streaming bandwidth: the largest m=1 GEMM's weight bytes / its latency
    allreduce_samples: list[CollectiveSample] = field(default_factory=list)
    allreduce_backend: str = ""


def _load(root: Path, system: str, op: str, wanted: str) -> tuple[pd.DataFrame, str, Path]:
    op_dir = root / "data" / system / op / "vllm"
    if not op_dir.is_dir():
        raise InputError(f"aiconfigurator-core has no vLLM {op} tables for {system}", "--host")
    version = pick_version(op_dir, wanted)
    files = sorted((op_dir / version).glob("*.parquet"))
    return pd.concat([pd.read_parquet(f).assign(_file=f.name) for f in files]), version, op_dir / version


def _pick_kernel(frame: pd.DataFrame, candidates: tuple[str, ...], what: str) -> str:
    present = set(frame["kernel_source"])
    for kernel in candidates:
        if kernel in present:
            return kernel
    raise InputError(f"no {what} kernel among {sorted(present)} matches {list(candidates)}", "--method")


def load_tables(
    host: str, arch: ModelArchitecture, hw: HardwareSpec, tp: int, weight_dtype: str, kv_dtype: str, vllm: str
) -> KernelTables:
    if hw.kernel_tables is None:
        raise InputError(
            f"aiconfigurator-core holds no vLLM kernel tables for '{host}'; it has {', '.join(hosts_with_tables())}",
            "--host",
        )
    root = systems_dir()
    system = hw.kernel_tables
    rel = root.parent
    sources: dict[str, TableSource] = {}

    gemm_frame, version, where = _load(root, system, "gemm", vllm)
    kernel = _pick_kernel(gemm_frame, GEMM_KERNELS[weight_dtype], f"{weight_dtype} GEMM")
    bf16_kernel = _pick_kernel(gemm_frame, GEMM_KERNELS["bfloat16"], "bfloat16 GEMM")
    gemm = GemmTable(gemm_frame[gemm_frame["kernel_source"] == kernel])
    # vLLM keeps the LM head unquantized in fp8 and nvfp4 checkpoints.
    lm_head = GemmTable(gemm_frame[gemm_frame["kernel_source"] == bf16_kernel])
    sources["gemm"] = TableSource("gemm", str(where.relative_to(rel)), version, kernel)
    sources["lm_head"] = TableSource("gemm", str(where.relative_to(rel)), version, bf16_kernel)
    small = gemm_frame[(gemm_frame["kernel_source"] == bf16_kernel) & (gemm_frame["m"] <= 16)]
    small = small[(small["n"] <= 256) & (small["k"] <= 256)]
    floor = float(small["latency"].median()) * 1e-3
    big = gemm_frame[(gemm_frame["kernel_source"] == bf16_kernel) & (gemm_frame["m"] == 1)]
    big = big.loc[(big["n"] * big["k"]).idxmax()]
    stream = float(big["n"] * big["k"] * 2 / (big["latency"] * 1e-3))

    q_heads, kv_heads = arch.num_attention_heads // tp, max(1, arch.num_kv_heads // tp)
    kv_name = "fp8" if kv_dtype == "fp8" else "bfloat16"
    attention = {}
    for op, table, length in (
        ("context", "context_attention", "isl"),
        ("generation", "generation_attention", "step"),
    ):
        frame, version, where = _load(root, system, "attention", vllm)
        frame = frame[frame["op_name"] == table]
        frame = frame[frame["kv_cache_dtype"] == kv_name]
        if "window_size" in frame.columns:  # full attention only (older tables have no sliding windows)
            frame = frame[frame["window_size"] == 0]
        frame = frame[(frame["num_heads"] == q_heads) & (frame["num_key_value_heads"] == kv_heads)]
        frame = frame[frame["head_dim"] == arch.head_dim]
        if frame.empty:
            raise InputError(
                f"the {table} table of {system} has no {q_heads} q / {kv_heads} KV heads of {arch.head_dim} "
                f"with a {kv_name} KV cache (TP{tp} of {arch.name})",
                "--tp",
            )
        kernel = _pick_kernel(frame, ATTENTION_KERNELS[table], table)
        attention[op] = Grid2DTable(frame[frame["kernel_source"] == kernel], length)
        sources[f"{op}_attention"] = TableSource(table, str(where.relative_to(rel)), version, kernel)

    moe = None
    if arch.is_moe:
        frame, version, where = _load(root, system, "moe", vllm)
        frame = frame[
            (frame["moe_dtype"] == MOE_DTYPES[weight_dtype])
            & (frame["hidden_size"] == arch.hidden_size)
            & (frame["inter_size"] == arch.intermediate_size)
            & (frame["topk"] == arch.num_experts_per_token)
            & (frame["num_experts"] == arch.num_experts)
            & (frame["moe_tp_size"] == tp)
            & (frame["moe_ep_size"] == 1)
            & (frame["distribution"] == "balanced")
        ]
        if frame.empty:
            raise InputError(f"the MoE table of {system} has no entry for {arch.name} at TP{tp}", "--model")
        kernel = sorted(frame["kernel_source"].unique())[0]
        rows = frame[frame["kernel_source"] == kernel].groupby("num_tokens")["latency"].median()
        moe = CurveTable(rows.index.to_numpy(), rows.to_numpy() * 1e-3)
        sources["moe"] = TableSource("moe", str(where.relative_to(rel)), version, kernel)

    tables = KernelTables(
        system=system,
        gemm=gemm,
        lm_head_gemm=lm_head,
        context=attention["context"],
        generation=attention["generation"],
        moe=moe,
        allreduce=None,
        sources=sources,
        kernel_floor_s=floor,
        stream_bytes_s=stream,
    )
    if tp > 1:
        _load_allreduce(tables, root, system, tp, hw, vllm, rel)
    return tables


def _load_allreduce(
    tables: KernelTables, root: Path, system: str, tp: int, hw: HardwareSpec, vllm: str, rel: Path
):
    """The all-reduce vLLM runs for a TP group of this GPU, by message size: its custom all-reduce (CUDA-graph
    variant) where vLLM enables it -- 2 GPUs, or up to 8 fully NVLink-connected -- and the message is under
    8 MiB; NCCL otherwise (docs/references.md#vllm-all-reduce)."""
    nvlink = any(name.startswith("nvlink") for name in hw.links)
    custom_ok = tp in CUSTOM_ALLREDUCE_SIZES and (tp == 2 or nvlink)
    sizes: dict[int, tuple[float, str]] = {}
    comm_dir = root / "data" / system / "comm"
    nccl_dirs = (
        sorted((comm_dir / "nccl").glob("*/nccl_perf.parquet")) if (comm_dir / "nccl").is_dir() else []
    )
    if nccl_dirs:
        nccl = pd.read_parquet(nccl_dirs[-1])
        nccl = nccl[
            (nccl["op_name"] == "all_reduce") & (nccl["num_gpus"] == tp) & (nccl["nccl_dtype"] == "half")
        ]
        for size, latency in nccl.groupby("message_size")["latency"].median().items():
            sizes[int(size)] = (float(latency) * 1e-3, "nccl")
        tables.sources["allreduce_nccl"] = TableSource(
            "all_reduce", str(nccl_dirs[-1].relative_to(rel)), nccl_dirs[-1].parent.name, "NCCL"
        )
    if custom_ok and (comm_dir / "vllm").is_dir():
        version = pick_version(comm_dir / "vllm", vllm)
        path = comm_dir / "vllm" / version / "custom_allreduce_perf.parquet"
        custom = pd.read_parquet(path)
        custom = custom[(custom["num_gpus"] == tp) & (custom["kernel_source"] == "vLLM_custom_graph")]
        for size, latency in custom.groupby("message_size")["latency"].median().items():
            if size < CUSTOM_ALLREDUCE_MAX_BYTES:
                sizes[int(size)] = (float(latency) * 1e-3, "vllm-custom")
        if not custom.empty:
            tables.sources["allreduce_custom"] = TableSource(
                "all_reduce", str(path.relative_to(rel)), version, "vLLM_custom_graph"
            )
    if not sizes:
        raise InputError(f"aiconfigurator-core has no all-reduce tables of {tp} GPUs for {system}", "--tp")
    ordered = sorted(sizes.items())
    tables.allreduce = CurveTable(np.array([s for s, _ in ordered]), np.array([t for _, (t, _) in ordered]))
    tables.allreduce_samples = [CollectiveSample(message_bytes=s, seconds=t) for s, (t, _) in ordered]
    backends = sorted({b for _, (_, b) in ordered})
    tables.allreduce_backend = " + ".join(backends)


@dataclass(frozen=True)
class ComposedStep:
    seconds: float
    parts: dict[str, float]  # component -> seconds


class StepComposer:
    """One vLLM engine step of a model on a GPU, from the measured tables (see the module docstring)."""

    def __init__(self, arch: ModelArchitecture, tables: KernelTables, tp: int, kv_dtype_bytes: int):
        self.arch, self.t, self.tp = arch, tables, tp
        a = arch
        self.q_dim = a.num_attention_heads * a.head_dim // tp
        self.kv_dim = max(1, a.num_kv_heads // tp) * a.head_dim
        self.inter = a.intermediate_size // tp
        self.kv_bytes = kv_dtype_bytes
        self.lookups = Lookups()

    def _gemm(self, m: float, n: float, k: float, what: str) -> float:
        seconds, beyond = self.t.gemm.seconds(m, n, k)
        self.lookups.note(what, beyond)
        return seconds

    def _small(self, tokens: float) -> float:
        """The small per-layer kernels: each at least the smallest measured kernel, else its bytes at the
        measured streaming bandwidth."""
        a, h = self.arch, self.arch.hidden_size
        per_token = {
            "add_rmsnorm": 4 * h * 2,
            "rotary": 2 * (self.q_dim + self.kv_dim) * 2,
            "kv_write": 2 * self.kv_dim * (2 + self.kv_bytes),
            "silu_mul": 3 * (a.intermediate_size * (a.num_experts_per_token or 1) // self.tp) * 2,
        }
        kernels = [
            per_token["add_rmsnorm"],
            per_token["add_rmsnorm"],
            per_token["rotary"],
            per_token["kv_write"],
        ]
        kernels.append(per_token["silu_mul"])
        return sum(max(self.t.kernel_floor_s, tokens * b / self.t.stream_bytes_s) for b in kernels)

    def dense_per_layer(self, tokens: int) -> dict[str, float]:
        """Everything of one layer that scales with the step's token rows (attention aside)."""
        a, h = self.arch, self.arch.hidden_size
        parts = {
            "qkv_proj": self._gemm(tokens, self.q_dim + 2 * self.kv_dim, h, "gemm"),
            "o_proj": self._gemm(tokens, h, self.q_dim, "gemm"),
            "small_kernels": self._small(tokens),
        }
        if a.is_moe:
            assert self.t.moe is not None
            moe, beyond = self.t.moe.seconds(tokens)
            self.lookups.note("moe", beyond)
            parts["moe"] = moe
            parts["router"] = self._gemm(tokens, a.num_experts, h, "gemm")
        else:
            parts["gate_up_proj"] = self._gemm(tokens, 2 * self.inter, h, "gemm")
            parts["down_proj"] = self._gemm(tokens, h, self.inter, "gemm")
        return parts

    def decode_attention(self, num_seqs: int, context_sum: int) -> float:
        if not num_seqs:
            return 0.0
        seconds, beyond = self.t.generation.seconds(num_seqs, context_sum / num_seqs)
        self.lookups.note("generation_attention", beyond)
        return seconds

    def prefill_attention(self, new: int, context: int) -> float:
        """A chunk of `new` tokens after context - new computed: timed as a fresh prefill with as many
        causal (query, key) pairs."""
        pairs = new * (context - new) + new * (new + 1) / 2
        length = (math.sqrt(1 + 8 * pairs) - 1) / 2
        seconds, beyond = self.t.context.seconds(1, max(1.0, length))
        self.lookups.note("context_attention", beyond)
        return seconds

    def sampling(self, sampled: int) -> float:
        """LM head on the sampled rows (unquantized), plus the sampler over their logits (fp32, a few passes)."""
        a = self.arch
        head, beyond = self.t.lm_head_gemm.seconds(sampled, a.vocab_size // self.tp, a.hidden_size)
        self.lookups.note("lm_head", beyond)
        sampler = max(self.t.kernel_floor_s, sampled * a.vocab_size * 4 * 3 / self.t.stream_bytes_s)
        return head + sampler

    def step(self, decode_seqs: int, decode_context: int, chunks: list[tuple[int, int]]) -> ComposedStep:
        """decode_context: sum of the decode sequences' contexts; chunks: (new tokens, context after) each."""
        tokens = decode_seqs + sum(new for new, _ in chunks)
        layers = self.arch.num_layers
        dense = self.dense_per_layer(tokens)
        parts = {name: seconds * layers for name, seconds in dense.items()}
        parts["attention_decode"] = self.decode_attention(decode_seqs, decode_context) * layers
        parts["attention_prefill"] = sum(self.prefill_attention(n, c) for n, c in chunks) * layers
        sampled = decode_seqs + len(chunks)
        parts["lm_head_and_sampler"] = self.sampling(sampled)
        parts["host"] = HOST_STEP_S
        return ComposedStep(sum(parts.values()), parts)


def shape_grid(
    budget: int, max_num_seqs: int, max_model_len: int, quick: bool
) -> list[tuple[str, int, int, list]]:
    """(kind, decode seqs, decode context sum, chunks) of the steps to compose: decodes over batch sizes and
    contexts, prefill chunks over sizes and prior context, and mixed steps."""
    batches = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if b <= max_num_seqs]
    contexts = [c for c in (128, 512, 2048, 8192, 32768) if c <= max_model_len]
    sizes = [s for s in (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384) if s <= budget]
    if quick:
        batches, contexts, sizes = batches[::2], contexts[::2], sizes[::2]
    shapes: list[tuple[str, int, int, list]] = []
    for b in batches:
        for c in contexts:
            shapes.append(("decode", b, b * c, []))
    for s in sizes:
        for prior in (0, 2048):
            if s + prior <= max_model_len:
                shapes.append(("prefill", 0, 0, [(s, s + prior)]))
    for b in batches:
        for s in sizes:
            if b + s <= budget and b < s:
                shapes.append(("mixed", b, b * min(2048, max_model_len), [(s - b, s - b)]))
    return shapes


def compose_samples(composer: StepComposer, shapes: list[tuple[str, int, int, list]]) -> list[StepSample]:
    samples = []
    for kind, n, context, chunks in shapes:
        step = composer.step(n, context, chunks)
        tokens = n + sum(new for new, _ in chunks)
        pairs = sum(new * (ctx - new) + new * (new + 1) // 2 for new, ctx in chunks)
        kv = context + sum(ctx for _, ctx in chunks)
        samples.append(
            StepSample(
                kind=kind,
                num_tokens=tokens,
                num_seqs=n + len(chunks),
                attention_pairs=pairs + context,  # a decode attends its whole context
                kv_read_tokens=kv,
                seconds=step.seconds,
            )
        )
    return samples


def token_knots(budget: int) -> tuple[int, ...]:
    return tuple(k for k in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192) if k < budget)


def held_out_gemm_check(
    frame_table: GemmTable, arch: ModelArchitecture, tp: int, seed: int = 0
) -> InterpolationCheck:
    """Re-interpolate measured GEMM points near the model's shapes from the grid without them."""
    errors = []
    rng = np.random.default_rng(seed)
    keys = list(frame_table.curves)
    for _ in range(60):
        n, k = keys[int(rng.integers(len(keys)))]
        ms, ts = frame_table.curves[(n, k)]
        if len(ms) < 4:
            continue
        j = int(rng.integers(1, len(ms) - 1))
        predicted = float(np.interp(ms[j], np.delete(ms, j), np.delete(ts, j)))
        errors.append(abs(predicted - ts[j]) / ts[j])
    return _check(errors)


def held_out_grid_check(table: Grid2DTable) -> InterpolationCheck:
    """Each interior measured cell re-interpolated from its row neighbours without it."""
    errors = []
    for i in range(len(table.batches)):
        for j in range(1, len(table.lengths) - 1):
            if not (table.valid[i, j - 1] and table.valid[i, j] and table.valid[i, j + 1]):
                continue
            f = _frac(table.lengths[j], table.lengths[j - 1], table.lengths[j + 1])
            predicted = (1 - f) * table.logt[i, j - 1] + f * table.logt[i, j + 1]
            errors.append(abs(math.exp(predicted - table.logt[i, j]) - 1.0))
    return _check(errors)


def held_out_curve_check(table: CurveTable) -> InterpolationCheck:
    errors = []
    for j in range(1, len(table.sizes) - 1):
        xs, ys = np.delete(table.sizes, j), np.delete(table.times, j)
        predicted, _ = _loglog(xs, ys, table.sizes[j])
        errors.append(abs(predicted - table.times[j]) / table.times[j])
    return _check(errors)


def _check(errors: list[float]) -> InterpolationCheck:
    if not errors:
        return InterpolationCheck(points=0, median_rel_error=0.0, p95_rel_error=0.0, max_rel_error=0.0)
    e = np.asarray(errors)
    return InterpolationCheck(
        points=len(e),
        median_rel_error=float(np.median(e)),
        p95_rel_error=float(np.percentile(e, 95)),
        max_rel_error=float(e.max()),
    )


Progress = Callable[[str, str], None]


def measure_kernel_tables(
    arch: ModelArchitecture,
    hw: HardwareSpec,
    *,
    host: str,
    tp: int,
    weight_dtype: str,
    kv_cache_dtype: str,
    vllm_version: str,
    budget: int,
    max_num_seqs: int,
    max_model_len: int,
    quick: bool,
    on_point: Progress,
):
    """(StepSection, collectives sections) of a profile for this model, GPU, TP and precision."""
    from calibrate.fit import fit_steps
    from sim.live.environment import provenance
    from sim.profile import CollectiveSection, FitQuality, StepSection

    if arch.num_attention_heads % tp:
        raise InputError(f"{arch.num_attention_heads} heads do not split over TP{tp}", "--tp")
    tables = load_tables(host, arch, hw, tp, weight_dtype, kv_cache_dtype, vllm_version)
    kv_bytes = 1 if kv_cache_dtype == "fp8" else arch.dtype_bytes
    composer = StepComposer(arch, tables, tp, kv_bytes)
    shapes = shape_grid(budget, max_num_seqs, max_model_len, quick)
    samples = compose_samples(composer, shapes)
    on_point("kernel-tables", f"{len(samples)} steps composed from {tables.system}'s tables")
    knots = token_knots(max(s.num_tokens for s in samples))
    fit = fit_steps(samples, knots)
    on_point(
        "kernel-tables:fit",
        f"held-out R^2 {fit.quality.r2:.4f}, p95 error {fit.quality.p95_rel_residual:.1%}",
    )
    checks = {
        "gemm": held_out_gemm_check(tables.gemm, arch, tp),
        "context_attention": held_out_grid_check(tables.context),
        "generation_attention": held_out_grid_check(tables.generation),
    }
    if tables.moe is not None:
        checks["moe"] = held_out_curve_check(tables.moe)
    if tables.allreduce is not None:
        checks["allreduce"] = held_out_curve_check(tables.allreduce)
    for name, check in checks.items():
        on_point(
            f"kernel-tables:check:{name}",
            f"median {check.median_rel_error:.1%}, p95 {check.p95_rel_error:.1%}",
        )
    measured_versions = sorted(
        {source.vllm_version for source in tables.sources.values() if source.op != "all_reduce"}
    )
    if measured_versions != [vllm_version]:
        on_point(
            "kernel-tables:warning",
            f"asked for vLLM {vllm_version}; the nearest measured tables are vLLM {', '.join(measured_versions)}",
        )
    beyond = composer.lookups.beyond
    if beyond:
        on_point(
            "kernel-tables:warning",
            f"extrapolated past the measured grid (scaled in proportion to work): {beyond}",
        )
    notes = (
        f"composed from aiconfigurator-core {package_version()} ({DISTRIBUTION}, Apache-2.0) tables of "
        f"{tables.system} measured by NVIDIA; {composer.lookups.inside} lookups inside the measured grids"
        + (f", beyond them (scaled in proportion to work): {beyond}" if beyond else "")
        + f"; asked for vLLM {vllm_version}, tables measured under vLLM {', '.join(measured_versions)}"
    )
    device = f"{hw.name} (NVIDIA's measurements in {tables.system}, composed on {_host()})"
    libraries = {DISTRIBUTION: package_version()}
    prov = provenance("kernel-tables", "kernel-tables", device, notes).model_copy(
        update={"libraries": {**provenance("kernel-tables", "kernel-tables", device).libraries, **libraries}}
    )
    components = {name: source.describe() for name, source in tables.sources.items()}
    components |= {
        "small_kernels": f"{SMALL_KERNELS_PER_LAYER} per layer (2 fused add+RMSNorm, rotary, KV write, "
        f"SiLU-and-mul), each max(smallest measured kernel {tables.kernel_floor_s * 1e6:.1f} us, bytes at the "
        f"measured streaming bandwidth {tables.stream_bytes_s / 1e9:.0f} GB/s)",
        "host": f"{HOST_STEP_S * 1e6:.0f} us per step: vLLM's step gap with async scheduling "
        "(published, docs/references.md#vllm-per-step-host-time)",
        "tp_allreduce": "not in the steps: the profile's collectives section prices them by message size"
        if tp > 1
        else "none (TP1)",
    }
    steps = StepSection(
        provenance=prov,
        tensor_parallel_size=tp,
        dtype=weight_dtype,
        kv_cache_dtype=kv_cache_dtype,
        vllm_version=tables.sources["gemm"].vllm_version,
        components=components,
        interpolation_check=checks,
        samples=samples,
        fit=fit,
    )
    collectives = []
    if tables.allreduce is not None:
        from calibrate.fit import fit_alpha_beta

        hop, bandwidth, quality = fit_alpha_beta(tables.allreduce_samples, tp)
        link = max(hw.links, key=lambda name: hw.links[name]) if hw.links else "unknown"
        collectives.append(
            CollectiveSection(
                provenance=provenance(
                    "kernel-tables", "kernel-tables", device, "vLLM's all-reduce choice by size"
                ),
                backend=tables.allreduce_backend,
                link=link,
                ranks=tp,
                hop_latency_s=hop,
                link_bandwidth_gbs=min(bandwidth, 1e6),
                quality=quality
                if quality.num_test
                else FitQuality(
                    r2=1.0,
                    max_rel_residual=0.0,
                    p95_rel_residual=0.0,
                    num_train=len(tables.allreduce_samples),
                    num_test=0,
                ),
                samples=tables.allreduce_samples,
                # the tables hold one median per message size: no measured spread, so no jitter
                jitter_sigma=None,
            )
        )
    return steps, collectives


def _host() -> str:
    from sim.live.environment import cpu_model

    return cpu_model()
