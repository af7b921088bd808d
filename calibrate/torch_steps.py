"""Method `torch`: time real prefill and decode steps of the model's architecture on this host.

The model is built by `transformers` from the architecture's public config numbers with random weights (no
download), at reduced depth: every grid point is timed at two depths and extrapolated linearly to the full
layer count, after checking on a few points that time is linear in layers. Decode steps run against a KV
cache filled with random tensors to the point's context. CUDA events time GPU steps; CPU steps use wall
time. The results are the `steps` section of the profile, plus the matmul and copy micro-benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from calibrate.fit import fit_steps, linear_in_layers
from calibrate.grid import StepPoint, measure_grid, step_grid
from calibrate.hf_config import llama_config
from calibrate.store import PointStore, measure_point
from calibrate.timing import cuda_median_time, median_time
from sim.architecture import ModelArchitecture
from sim.errors import InputError
from sim.live.environment import cpu_model, provenance
from sim.profile import MicroBenchmarks, StepSection

INSTALL_HINT = 'pip install "servesim[torch]"  (torch==2.13.0 CPU build and transformers)'
LAYER_CHECK_DEPTHS = (1, 2, 3, 4)


def require_torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        raise InputError(
            f"the torch method needs torch and transformers: {INSTALL_HINT}", "--method"
        ) from None
    return torch


# What torch.cuda.get_device_name() says for each GPU in the hardware catalog.
GPU_NAMES = {"h100": "H100", "h200": "H200", "a100-80g": "A100", "l4": "L4", "rtx-pro-6000": "RTX PRO 6000"}


def device_for(host: str):
    """The torch device for --host, refusing a host that is not what this machine has."""
    torch = require_torch()
    if host == "cpu":
        return torch.device("cpu"), cpu_model()
    if not torch.cuda.is_available():
        raise InputError(
            f"--host {host} asks for a GPU but this machine has none (torch sees no CUDA device); "
            "use --host cpu here",
            "--host",
        )
    found = torch.cuda.get_device_name(0)
    expected = GPU_NAMES.get(host)
    if expected is None or expected not in found:
        raise InputError(f"--host {host} but this machine's GPU is '{found}'", "--host")
    return torch.device("cuda"), found


def build_model(arch: ModelArchitecture, layers: int, device, dtype):
    torch = require_torch()
    from transformers import LlamaForCausalLM

    config = llama_config(arch, layers, "torch")
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype=dtype).eval()
    return model, config


class StepTimer:
    """Times one grid point on a model of a given depth."""

    def __init__(self, arch: ModelArchitecture, device, dtype, repeats: int):
        self.torch = require_torch()
        self.arch, self.device, self.dtype, self.repeats = arch, device, dtype, repeats
        self._models: dict[int, tuple] = {}
        self.on_gpu = device.type == "cuda"

    def _time(self, fn, before=None) -> float:
        """CUDA events on a GPU (device time), wall clock on a CPU; median of the repeats."""
        if self.on_gpu:
            return cuda_median_time(self.torch, fn, repeats=self.repeats, before=before)
        return median_time(fn, repeats=self.repeats, before=before)

    def model(self, layers: int):
        if layers not in self._models:
            self._models.clear()  # one depth at a time keeps memory flat
            self._models[layers] = build_model(self.arch, layers, self.device, self.dtype)
        return self._models[layers]

    def seconds(self, point: StepPoint, layers: int) -> float:
        torch = self.torch
        from transformers import DynamicCache

        model, config = self.model(layers)
        vocab = self.arch.vocab_size
        with torch.inference_mode():
            if point.kind == "prefill":
                ids = torch.randint(0, vocab, (1, point.num_tokens), device=self.device)
                return self._time(lambda: model(input_ids=ids, use_cache=False, logits_to_keep=1))
            b, c = point.num_tokens, point.context
            cache = DynamicCache(config=config)
            shape = (b, self.arch.num_kv_heads, c, self.arch.head_dim)
            for layer in range(layers):
                cache.update(
                    torch.randn(shape, device=self.device, dtype=self.dtype),
                    torch.randn(shape, device=self.device, dtype=self.dtype),
                    layer,
                )
            ids = torch.randint(0, vocab, (b, 1), device=self.device)
            pos = torch.full((b, 1), c, device=self.device)
            return self._time(
                lambda: model(
                    input_ids=ids, past_key_values=cache, position_ids=pos, use_cache=True, logits_to_keep=1
                ),
                before=lambda: _trim(cache, c),
            )


def _trim(cache, length: int) -> None:
    """Cut the KV cache back to `length` tokens after a timed decode step appended one."""
    excess = cache.get_seq_length() - length
    if excess > 0:
        try:
            cache.crop(-excess)  # transformers >= 5: a negative value removes that many tokens
        except ValueError:
            cache.crop(length)  # older releases: a positive value is the length to keep


def depths_for(arch: ModelArchitecture) -> list[int]:
    """Depths each point is timed at: the full depth for small models, else 1 and 2 layers."""
    return [arch.num_layers] if arch.num_layers <= 4 else [1, 2]


def measure_steps(
    arch: ModelArchitecture,
    *,
    host: str,
    quick: bool,
    store: PointStore,
    point_timeout: float | None,
    max_model_len: int,
    max_kv_tokens: int,
    on_point: Callable[[str, str], None],
) -> tuple[StepSection, MicroBenchmarks]:
    torch = require_torch()
    device, device_kind = device_for(host)
    dtype = torch.bfloat16 if arch.dtype_bytes == 2 else torch.float32
    timer = StepTimer(arch, device, dtype, repeats=3 if quick else 5)
    depths = depths_for(arch)
    grid = step_grid(quick=quick, max_model_len=max_model_len, max_kv_tokens=max_kv_tokens)

    def measure(point: StepPoint) -> dict:
        times = [timer.seconds(point, d) for d in depths]
        return {"seconds": linear_in_layers(depths, times, arch.num_layers)[0], "depth_seconds": times}

    skipped: list[str] = []
    samples = measure_grid(
        grid,
        prefix="steps",
        seconds=measure,
        layers=depths,
        store=store,
        point_timeout=point_timeout,
        skipped=skipped,
        on_point=on_point,
    )

    layer_r2 = _layer_check(timer, grid, store, point_timeout, on_point)
    micro = _microbenchmarks(device, dtype, device_kind, store, on_point, quick)
    notes = f"random weights, {dtype}, depths {depths} extrapolated to {arch.num_layers} layers"
    if skipped:
        notes += f"; not measured: {', '.join(skipped)}"
    section = StepSection(
        provenance=provenance("measured", "torch", device_kind, notes),
        dtype=str(dtype).removeprefix("torch."),
        samples=samples,
        fit=fit_steps(samples),
        layer_scaling_r2=layer_r2,
    )
    return section, micro


def _layer_check(timer: StepTimer, grid, store: PointStore, point_timeout, on_point) -> float:
    """Time the two largest prefills and the largest decode at 1-4 layers; return the worst R^2 of the
    straight line through them (how well 'time is linear in layers' holds here). The largest points are
    used because their per-layer work stands well above timer noise."""
    prefills = sorted((p for p in grid if p.kind == "prefill"), key=lambda p: p.attention_pairs)
    decodes = sorted((p for p in grid if p.kind == "decode"), key=lambda p: p.kv_read_tokens)
    chosen = prefills[-2:] + decodes[-1:]
    worst = 1.0
    for point in chosen:
        key = f"layers:{point.key}"
        record = measure_point(
            store,
            key,
            partial(_layer_seconds, timer, point),
            point_timeout=point_timeout,
            skipped=[],
            on_point=on_point,
        )
        if record is None:
            continue
        _, r2 = linear_in_layers(list(LAYER_CHECK_DEPTHS), record["seconds"], LAYER_CHECK_DEPTHS[-1])
        on_point(key, f"R^2 {r2:.3f}")
        worst = min(worst, r2)
    return worst


def _microbenchmarks(
    device, dtype, device_kind: str, store: PointStore, on_point, quick: bool = False
) -> MicroBenchmarks:
    """Peak matmul rate and copy bandwidth; --quick times the smaller sizes only (a 2048^3 float32 matmul
    alone takes seconds on a busy CPU)."""
    torch = require_torch()
    record = store.get("micro")
    if record is None:
        sync = torch.cuda.synchronize if device.type == "cuda" else None
        best = 0.0
        sizes = (512, 1024, 2048) if device.type == "cpu" else (4096, 8192)
        for n in sizes[:2] if quick else sizes:
            a = torch.randn(n, n, device=device, dtype=dtype)
            b = torch.randn(n, n, device=device, dtype=dtype)
            t = median_time(partial(torch.matmul, a, b), repeats=3, sync=sync)
            best = max(best, 2 * n**3 / t / 1e12)
        size = (64 if quick else 256) * 2**20  # bytes
        src = torch.empty(size // 2, device=device, dtype=torch.float16)
        dst = torch.empty_like(src)
        t = median_time(lambda: dst.copy_(src), repeats=5, sync=sync)
        record = {"matmul_tflops": best, "memory_bandwidth_gbs": 2 * size / t / 1e9}  # read + write
        store.put("micro", record)
    on_point("micro", f"{record['matmul_tflops']:.2f} TFLOP/s, {record['memory_bandwidth_gbs']:.0f} GB/s")
    return MicroBenchmarks(
        provenance=provenance(
            "measured", "torch", device_kind, f"square matmuls in {dtype}; fp16 device copy"
        ),
        matmul_tflops=record["matmul_tflops"],
        memory_bandwidth_gbs=record["memory_bandwidth_gbs"],
    )


def kv_budget_tokens(arch: ModelArchitecture, host: str, memory_bytes: int) -> int:
    """Decode points must fit their random KV cache: a quarter of device memory at full depth is plenty on a
    GPU; on CPU keep it small because each point builds the cache afresh."""
    per_token = arch.kv_bytes_per_token
    budget = memory_bytes // 4 if host != "cpu" else 2 * 1024**3
    return max(1, math.floor(budget / per_token))


def _layer_seconds(timer, point) -> dict:
    """A grid point timed at each depth of LAYER_CHECK_DEPTHS (does time grow linearly with layers?)."""
    return {"seconds": [timer.seconds(point, d) for d in LAYER_CHECK_DEPTHS]}
