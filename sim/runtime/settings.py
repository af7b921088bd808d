"""The runtime configuration of a scenario, resolved once: bucket lists, capture sizes, compile times,
jitter, with the provenance of each default. It builds one stateful runtime per replica (each replica has
its own compiled shapes and its own jitter stream) and the runtime's share of start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim import catalog
from sim.errors import InputError
from sim.resolve import ResolvedScenario
from sim.runtime.buckets import cuda_graph_capture_sizes, request_buckets, token_buckets
from sim.runtime.cuda import CudaRuntime
from sim.runtime.jitter import StragglerJitter
from sim.runtime.xla import XlaRuntime
from sim.runtime.xla_compile import (
    XlaCompileTimes,
    derive_backbone_s,
    num_small_functions,
    precompile_seconds,
)


def _label(entry: dict) -> str:
    return f"{entry['value']} ({entry['provenance']}: {entry['source']})"


@dataclass
class RuntimeSettings:
    name: str  # "cuda" or "xla"
    resolved: ResolvedScenario
    jitter_sigma: float
    provenance: dict[str, str] = field(default_factory=dict)
    # cuda
    capture_sizes: list[int] = field(default_factory=list)
    piecewise_overhead_s: float = 0.0
    eager_overhead_s: float = 0.0
    # xla
    token_buckets: list[int] = field(default_factory=list)
    request_buckets: list[int] = field(default_factory=list)
    attn_request_buckets: list[int] = field(default_factory=list)
    precompiled_tokens: list[int] = field(default_factory=list)
    compile_times: XlaCompileTimes | None = None

    def build(self, base, replica_id: int, seed: int, cache: str | None = None):
        """A fresh runtime for one replica: nothing compiled beyond the precompile, its own jitter stream.
        cache overrides the scenario's compile-cache state (for the cold/warm start-up comparison)."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E5, replica_id]))
        jitter = StragglerJitter(self.jitter_sigma, self.resolved.tp, rng)
        if self.name in ("cuda", "eager"):
            return CudaRuntime(
                base,
                capture_sizes=self.capture_sizes,
                piecewise_overhead_s=self.piecewise_overhead_s,
                eager_overhead_s=self.eager_overhead_s,
                jitter=jitter,
            )
        xla = self.resolved.scenario.engine.xla
        return XlaRuntime(
            base,
            token_buckets=self.token_buckets,
            request_buckets=self.request_buckets,
            attn_request_buckets=self.attn_request_buckets,
            precompiled_tokens=self.precompiled_tokens,
            compile_times=self.compile_times,
            cache=cache or xla.compile_cache,
            jitter=jitter,
        )

    @property
    def scenario_cache(self) -> str:
        """The compile-cache state the scenario gives a newly started replica ("cold" or "warm")."""
        eng = self.resolved.scenario.engine
        if self.name == "xla":
            return eng.xla.compile_cache
        if self.name == "cuda" and not eng.cuda.enforce_eager:
            return eng.cuda.torch_compile_cache
        return "cold"  # eager: nothing is compiled, the two start-ups are the same

    def startup_parts(self, cache: str) -> tuple[dict[str, float], dict[str, str]]:
        """The runtime's own start-up components (seconds) and their provenance, for a cold or warm cache."""
        eng = self.resolved.scenario.engine
        if self.name == "eager":
            d = catalog.runtime_defaults()["cpu"]
            return {"engine_start": d["engine_start_s"]["value"]}, {
                "engine_start": _label(d["engine_start_s"])
            }
        if self.name == "cuda":
            d = catalog.runtime_defaults()["cuda"]
            if eng.cuda.enforce_eager:
                return (
                    {"engine_init": d["engine_init_s"]["value"]},
                    {"engine_init": _label(d["engine_init_s"])},
                )
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
        if not eng.xla.precompile:
            return {"xla_precompile": 0.0}, {
                "xla_precompile": "skipped (SKIP_JAX_PRECOMPILE): shapes compile on first use"
            }
        seconds = precompile_seconds(
            self.compile_times,
            self.precompiled_tokens,
            self.request_buckets,
            self.attn_request_buckets,
            cache,
            eng.xla.precompile_workers,
        )
        graphs = len(self.precompiled_tokens) * len(self.attn_request_buckets)
        smalls = num_small_functions(self.precompiled_tokens, self.request_buckets)
        return (
            {"xla_precompile": seconds},
            {
                "xla_precompile": f"{graphs} backbone + {smalls} small graphs, {cache} cache, "
                f"{eng.xla.precompile_workers} worker(s); {self.compile_times.source}"
            },
        )


def resolve_runtime(resolved: ResolvedScenario) -> RuntimeSettings:
    eng = resolved.scenario.engine
    hw = resolved.hardware
    name = eng.runtime or {"tpu": "xla", "gpu": "cuda", "cpu": "eager"}[hw.kind]
    if {"xla": "tpu", "cuda": "gpu", "eager": "cpu"}[name] != hw.kind:
        raise InputError(f"runtime '{name}' does not run on {hw.kind} hardware ({hw.name})", "engine.runtime")
    defaults = catalog.runtime_defaults()
    settings = RuntimeSettings(name=name, resolved=resolved, jitter_sigma=0.0)
    prov = settings.provenance
    prov["runtime"] = "scenario" if eng.runtime else f"default for {hw.kind} hardware"
    if resolved.tp > 1:
        from sim.cost.collectives import choose_link

        link, _ = choose_link(hw, resolved.scenario.fleet.interconnect)
        sigmas = defaults["collective_jitter_sigma"]
        if resolved.scenario.fleet.collective_jitter_sigma is not None:
            settings.jitter_sigma = resolved.scenario.fleet.collective_jitter_sigma
            prov["collective_jitter_sigma"] = f"{settings.jitter_sigma} (scenario)"
        elif link in sigmas:
            settings.jitter_sigma = sigmas[link]["value"]
            prov["collective_jitter_sigma"] = f"{link}: {_label(sigmas[link])}"
    engine = resolved.engine
    if name == "eager":
        prov["eager"] = "vLLM's CPU path: dynamic shapes, no CUDA graphs, no padding"
        return settings
    if name == "cuda":
        spec, d = eng.cuda, defaults["cuda"]
        if spec.enforce_eager:
            settings.capture_sizes = []
        elif spec.cudagraph_capture_sizes is not None:
            settings.capture_sizes = sorted(set(spec.cudagraph_capture_sizes))
        else:
            settings.capture_sizes = cuda_graph_capture_sizes(
                engine.max_num_seqs, engine.max_num_batched_tokens, spec.max_cudagraph_capture_size
            )
        prov["cuda_graph_capture_sizes"] = (
            "none (enforce_eager)"
            if spec.enforce_eager
            else f"{len(settings.capture_sizes)} sizes up to {settings.capture_sizes[-1]} (vLLM v0.33 rule, facts §2.4)"
        )
        layers = resolved.model.num_layers
        for attr in ("piecewise_overhead_per_layer_s", "eager_overhead_per_layer_s"):
            value = getattr(spec, attr)
            entry = d[attr]
            per_layer = value if value is not None else entry["value"]
            prov[attr] = f"{value} (scenario)" if value is not None else _label(entry)
            setattr(settings, attr.replace("_per_layer", ""), per_layer * layers)
        return settings

    spec, d = eng.xla, defaults["xla"]
    settings.token_buckets = token_buckets(
        engine.max_num_batched_tokens,
        padding_gap=spec.bucket_padding_gap,
        min_bucket=spec.min_token_bucket,
        extra=spec.extra_token_buckets,
    )
    settings.request_buckets = request_buckets(engine.max_num_seqs)
    settings.attn_request_buckets = [engine.max_num_seqs]  # tpu-inference default (facts §1.2)
    if not spec.precompile:
        settings.precompiled_tokens = []
    elif spec.precompile_token_buckets is not None:
        unknown = sorted(set(spec.precompile_token_buckets) - set(settings.token_buckets))
        if unknown:
            raise InputError(
                f"{unknown} are not token buckets ({settings.token_buckets})",
                "engine.xla.precompile_token_buckets",
            )
        settings.precompiled_tokens = sorted(set(spec.precompile_token_buckets))
    else:
        settings.precompiled_tokens = list(settings.token_buckets)
    if spec.backbone_compile_s is not None:
        backbone, source = spec.backbone_compile_s, "backbone compile from the scenario"
    else:
        backbone = derive_backbone_s(d, resolved.model.num_layers)
        source = (
            f"backbone {backbone:.1f} s/bucket derived from {d['anchor_warmup_s']['source']}, "
            f"scaled to {resolved.model.num_layers} layers (estimated)"
        )
    measured_cold = measured_warm = None
    if resolved.profile is not None and spec.backbone_compile_s is None:
        section = resolved.profile.compile
        if section is not None:
            measured_cold = {s.token_bucket: s.cold_s for s in section.samples}
            measured_warm = {
                s.token_bucket: s.warm_s for s in section.samples if s.warm_s is not None
            } or None
            p = section.provenance
            source = (
                f"per-bucket compile times {p.method} by calibrate ({p.tool}) for {section.target} on {p.host}, "
                f"{p.date}, buckets {sorted(measured_cold)} (others interpolated over log2 bucket)"
                + ("" if measured_warm else "; warm cache from the derived ratio below")
            )
    settings.compile_times = XlaCompileTimes(
        backbone_s=backbone,
        small_s=d["small_function_compile_s"]["value"],
        warm_fraction=d["warm_cache_fraction"]["value"],
        source=source,
        measured_cold=measured_cold,
        measured_warm=measured_warm,
    )
    prov["xla_token_buckets"] = f"{settings.token_buckets} (tpu-inference get_token_paddings, facts §1.1)"
    prov["xla_request_buckets"] = f"{settings.request_buckets} (tpu-inference get_req_paddings, facts §1.2)"
    prov["xla_compile_times"] = (
        f"{source}; small functions {_label(d['small_function_compile_s'])}; "
        f"warm cache x{_label(d['warm_cache_fraction'])}"
    )
    return settings
