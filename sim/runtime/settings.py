"""The runtime configuration of a scenario, resolved once: capture sizes or bucket lists, compile times,
with the provenance of each default. It builds one stateful runtime per replica (each replica has its own
compiled shapes and its own jitter stream, sim/cost/base.py) and knows the runtime's share of start-up.

Runtimes come from ``RUNTIMES``: each entry says which kind of hardware it runs on and resolves its own
settings from the scenario's engine section.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sim import catalog
from sim.architecture import ModelArchitecture
from sim.cost.base import DeviceTimeModel, StepCostModel
from sim.cost.collectives import TPLink
from sim.errors import InputError
from sim.hardware import HardwareSpec
from sim.hardware_kinds import HARDWARE_KINDS
from sim.profile import Profile
from sim.runtime.buckets import cuda_graph_capture_sizes, request_buckets, token_buckets
from sim.runtime.cuda import CudaRuntime
from sim.runtime.engine import ResolvedEngine
from sim.runtime.jitter import StragglerJitter
from sim.runtime.xla import XlaRuntime
from sim.runtime.xla_compile import (
    XlaCompileTimes,
    derive_backbone_s,
    num_small_functions,
    precompile_seconds,
)

if TYPE_CHECKING:  # the engine section names RUNTIMES (a registry key): no import back at run time
    from sim.runtime.spec import EngineSpec


def _label(entry: dict) -> str:
    return f"{entry['value']} ({entry['provenance']}: {entry['source']})"


@dataclass(frozen=True)
class RuntimeInputs:
    """What resolving a runtime may look at."""

    spec: EngineSpec
    engine: ResolvedEngine
    model: ModelArchitecture
    hardware: HardwareSpec
    tp: int
    link: TPLink | None
    profile: Profile | None


@dataclass
class RuntimeSettings(ABC):
    name: str  # key of RUNTIMES
    jitter_sigma: float  # collective straggler jitter of the TP link (0 without TP)
    tp: int
    provenance: dict[str, str] = field(default_factory=dict)

    def _jitter(self, replica_id: int, seed: int) -> StragglerJitter:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E5, replica_id]))
        return StragglerJitter(self.jitter_sigma, self.tp, rng)

    @abstractmethod
    def build(
        self, device: DeviceTimeModel, replica_id: int, seed: int, cache: str | None = None
    ) -> StepCostModel:
        """A fresh runtime for one replica: nothing compiled beyond the precompile, its own jitter stream.
        cache overrides the scenario's compile-cache state (for the cold/warm start-up comparison)."""

    @property
    @abstractmethod
    def scenario_cache(self) -> str:
        """The compile-cache state the scenario gives a newly started replica ("cold" or "warm")."""

    @abstractmethod
    def startup_parts(self, cache: str) -> tuple[dict[str, float], dict[str, str]]:
        """The runtime's own start-up components (seconds) and their provenance, for a cold or warm cache."""


@dataclass
class CudaSettings(RuntimeSettings):
    """vLLM's CUDA path (sim/runtime/cuda.py); with no capture sizes every step runs eagerly."""

    capture_sizes: list[int] = field(default_factory=list)
    piecewise_overhead_s: float = 0.0
    eager_overhead_s: float = 0.0
    enforce_eager: bool = False
    torch_compile_cache: str = "cold"

    def build(self, device, replica_id, seed, cache=None) -> StepCostModel:
        return CudaRuntime(
            device,
            capture_sizes=self.capture_sizes,
            piecewise_overhead_s=self.piecewise_overhead_s,
            eager_overhead_s=self.eager_overhead_s,
            jitter=self._jitter(replica_id, seed),
        )

    @property
    def scenario_cache(self) -> str:
        return "cold" if self.enforce_eager else self.torch_compile_cache

    def startup_parts(self, cache):
        d = catalog.runtime_defaults()["cuda"]
        if self.enforce_eager:
            return {"engine_init": d["engine_init_s"]["value"]}, {"engine_init": _label(d["engine_init_s"])}
        compile_entry = d["torch_compile_cached_s"] if cache == "warm" else d["torch_compile_cold_s"]
        per_size = d["graph_capture_s_per_size"]["value"]
        return (
            {
                "engine_init": d["engine_init_s"]["value"],
                "torch_compile": compile_entry["value"],
                "cuda_graph_capture": per_size * len(self.capture_sizes),
            },
            {
                "engine_init": _label(d["engine_init_s"]),
                "torch_compile": _label(compile_entry),
                "cuda_graph_capture": f"{len(self.capture_sizes)} sizes x {_label(d['graph_capture_s_per_size'])}",
            },
        )


@dataclass
class EagerSettings(CudaSettings):
    """vLLM's CPU path: dynamic shapes, no graphs, no compile; the CUDA runtime with no capture sizes."""

    @property
    def scenario_cache(self) -> str:
        return "cold"  # nothing is compiled: the two start-ups are the same

    def startup_parts(self, cache):
        d = catalog.runtime_defaults()["cpu"]
        return {"engine_start": d["engine_start_s"]["value"]}, {"engine_start": _label(d["engine_start_s"])}


@dataclass
class XlaSettings(RuntimeSettings):
    """vLLM's TPU path (sim/runtime/xla.py)."""

    token_buckets: list[int] = field(default_factory=list)
    request_buckets: list[int] = field(default_factory=list)
    attn_request_buckets: list[int] = field(default_factory=list)
    precompiled_tokens: list[int] = field(default_factory=list)
    compile_times: XlaCompileTimes | None = None
    compile_cache: str = "cold"
    precompile: bool = True
    precompile_workers: int = 1

    def build(self, device, replica_id, seed, cache=None) -> StepCostModel:
        assert self.compile_times is not None
        return XlaRuntime(
            device,
            token_buckets=self.token_buckets,
            request_buckets=self.request_buckets,
            attn_request_buckets=self.attn_request_buckets,
            precompiled_tokens=self.precompiled_tokens,
            compile_times=self.compile_times,
            cache=cache or self.compile_cache,
            jitter=self._jitter(replica_id, seed),
        )

    @property
    def scenario_cache(self) -> str:
        return self.compile_cache

    def startup_parts(self, cache):
        if not self.precompile:
            return {"xla_precompile": 0.0}, {
                "xla_precompile": "skipped (SKIP_JAX_PRECOMPILE): shapes compile on first use"
            }
        assert self.compile_times is not None
        seconds = precompile_seconds(
            self.compile_times,
            self.precompiled_tokens,
            self.request_buckets,
            self.attn_request_buckets,
            cache,
            self.precompile_workers,
        )
        graphs = len(self.precompiled_tokens) * len(self.attn_request_buckets)
        smalls = num_small_functions(self.precompiled_tokens, self.request_buckets)
        return (
            {"xla_precompile": seconds},
            {
                "xla_precompile": f"{graphs} backbone + {smalls} small graphs, {cache} cache, "
                f"{self.precompile_workers} worker(s); {self.compile_times.source}"
            },
        )


def _resolve_cuda(inputs: RuntimeInputs, base: dict) -> RuntimeSettings:
    spec, engine, d = inputs.spec.cuda, inputs.engine, catalog.runtime_defaults()["cuda"]
    prov = base["provenance"]
    if spec.enforce_eager:
        sizes: list[int] = []
    elif spec.cudagraph_capture_sizes is not None:
        sizes = sorted(set(spec.cudagraph_capture_sizes))
    else:
        sizes = cuda_graph_capture_sizes(
            engine.max_num_seqs, engine.max_num_batched_tokens, spec.max_cudagraph_capture_size
        )
    prov["cuda_graph_capture_sizes"] = (
        "none (enforce_eager)"
        if spec.enforce_eager
        else f"{len(sizes)} sizes up to {sizes[-1]} (vLLM v0.33 rule, docs/references.md#cuda-graphs)"
    )
    layers = inputs.model.num_layers
    per_layer = {}
    for name, value in (
        ("piecewise_overhead_per_layer_s", spec.piecewise_overhead_per_layer_s),
        ("eager_overhead_per_layer_s", spec.eager_overhead_per_layer_s),
    ):
        entry = d[name]
        per_layer[name] = value if value is not None else entry["value"]
        prov[name] = f"{value} (scenario)" if value is not None else _label(entry)
    return CudaSettings(
        **base,
        capture_sizes=sizes,
        piecewise_overhead_s=per_layer["piecewise_overhead_per_layer_s"] * layers,
        eager_overhead_s=per_layer["eager_overhead_per_layer_s"] * layers,
        enforce_eager=spec.enforce_eager,
        torch_compile_cache=spec.torch_compile_cache,
    )


def _resolve_eager(inputs: RuntimeInputs, base: dict) -> RuntimeSettings:
    base["provenance"]["eager"] = "vLLM's CPU path: dynamic shapes, no CUDA graphs, no padding"
    return EagerSettings(**base, enforce_eager=True)


def _resolve_xla(inputs: RuntimeInputs, base: dict) -> RuntimeSettings:
    spec, engine, d = inputs.spec.xla, inputs.engine, catalog.runtime_defaults()["xla"]
    prov = base["provenance"]
    tokens = token_buckets(
        engine.max_num_batched_tokens,
        padding_gap=spec.bucket_padding_gap,
        min_bucket=spec.min_token_bucket,
        extra=spec.extra_token_buckets,
    )
    if not spec.precompile:
        precompiled: list[int] = []
    elif spec.precompile_token_buckets is not None:
        unknown = sorted(set(spec.precompile_token_buckets) - set(tokens))
        if unknown:
            raise InputError(
                f"{unknown} are not token buckets ({tokens})", "engine.xla.precompile_token_buckets"
            )
        precompiled = sorted(set(spec.precompile_token_buckets))
    else:
        precompiled = list(tokens)
    if spec.backbone_compile_s is not None:
        backbone, source = spec.backbone_compile_s, "backbone compile from the scenario"
    else:
        backbone = derive_backbone_s(d, inputs.model.num_layers)
        source = (
            f"backbone {backbone:.1f} s/bucket derived from {d['anchor_warmup_s']['source']}, "
            f"scaled to {inputs.model.num_layers} layers (estimated)"
        )
    measured_cold = measured_warm = None
    section = inputs.profile.compile if inputs.profile is not None else None
    if section is not None and section.samples and spec.backbone_compile_s is None:
        speedup = spec.compile_host_speedup
        measured_cold = {s.token_bucket: s.cold_s / speedup for s in section.samples}
        measured_warm = {
            s.token_bucket: s.warm_s / speedup for s in section.samples if s.warm_s is not None
        } or None
        p = section.provenance
        host = section.compile_host
        source = (
            f"per-bucket compile times {p.method} by calibrate ({p.tool}) for {section.target} on {p.host}"
            + (
                f" ({host.cpu}, {host.logical_cpus} CPUs, reference compile {host.reference_compile_s:.2f} s)"
                if host
                else ""
            )
            + f", {p.date}, buckets {sorted(measured_cold)} (others interpolated over log2 bucket)"
            + (
                f", divided by engine.xla.compile_host_speedup {speedup:g}"
                if speedup != 1.0
                else ", as measured there"
            )
            + ("" if measured_warm else "; warm cache from the derived ratio below")
        )
    compile_times = XlaCompileTimes(
        backbone_s=backbone,
        small_s=d["small_function_compile_s"]["value"],
        warm_fraction=d["warm_cache_fraction"]["value"],
        source=source,
        measured_cold=measured_cold,
        measured_warm=measured_warm,
    )
    requests = request_buckets(engine.max_num_seqs)
    prov["xla_token_buckets"] = f"{tokens} (tpu-inference get_token_paddings, docs/references.md#tpu-buckets)"
    prov["xla_request_buckets"] = (
        f"{requests} (tpu-inference get_req_paddings, docs/references.md#tpu-buckets)"
    )
    prov["xla_compile_times"] = (
        f"{source}; small functions {_label(d['small_function_compile_s'])}; "
        f"warm cache x{_label(d['warm_cache_fraction'])}"
    )
    return XlaSettings(
        **base,
        token_buckets=tokens,
        request_buckets=requests,
        attn_request_buckets=[engine.max_num_seqs],  # tpu-inference default (docs/references.md#tpu-buckets)
        precompiled_tokens=precompiled,
        compile_times=compile_times,
        compile_cache=spec.compile_cache,
        precompile=spec.precompile,
        precompile_workers=spec.precompile_workers,
    )


# name -> how its settings are resolved; which kinds of hardware each serves is in sim/hardware_kinds.py.
RUNTIMES: dict[str, Callable[[RuntimeInputs, dict], RuntimeSettings]] = {
    "cuda": _resolve_cuda,
    "xla": _resolve_xla,
    "eager": _resolve_eager,
}


def resolve_runtime(inputs: RuntimeInputs) -> RuntimeSettings:
    hw = inputs.hardware
    served_by = HARDWARE_KINDS[hw.kind].runtimes
    name = inputs.spec.runtime or served_by[0]
    if name not in served_by:
        raise InputError(f"runtime '{name}' does not run on {hw.kind} hardware ({hw.name})", "engine.runtime")
    provenance = {"runtime": "scenario" if inputs.spec.runtime else f"default for {hw.kind} hardware"}
    sigma = inputs.link.jitter_sigma if inputs.link is not None else 0.0
    base = {"name": name, "jitter_sigma": sigma, "tp": inputs.tp, "provenance": provenance}
    return RUNTIMES[name](inputs, base)
