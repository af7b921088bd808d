"""The measuring methods of `calibrate`, one registry entry each.

A method checks that it can measure the host it is given (``check``: an InputError naming the option to
change) and fills sections of the profile that sim/profile.py defines (``measure``). Each one lives in a
module of its own (calibrate/<method>.py); this file only says which module answers which name, so
`calibrate` itself holds no if-chain over methods.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from calibrate.store import PointStore
from sim.architecture import ModelArchitecture
from sim.errors import InputError
from sim.hardware import HardwareSpec


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@dataclass
class Context:
    """What a method is asked to measure, and how."""

    arch: ModelArchitecture
    hw: HardwareSpec
    host: str  # the hardware catalog name given as --host
    quick: bool
    store: PointStore  # finished points, saved at once (--resume)
    point_timeout: float
    budget: int  # largest step, tokens
    max_model_len: int
    on_point: Callable[[str, str], None]
    options: dict = field(default_factory=dict)  # method-specific CLI options (endpoint, ranks, ...)


class Method(ABC):
    name: str
    summary: str  # one line for --help

    def check(self, host: str, hw: HardwareSpec, options: dict) -> None:  # noqa: B027 -- most measure any host
        """Raise InputError when this method cannot measure this host with these options."""

    @abstractmethod
    def measure(self, ctx: Context, sections: dict) -> None:
        """Measure and put the results into the profile's sections (keys of sim.profile.Profile)."""


class EndpointMethod(Method):
    name = "endpoint"
    summary = "(with --endpoint URL) black-box probes of a live OpenAI-compatible server"

    def check(self, host, hw, options):
        if options.get("endpoint") is None:
            raise InputError("the endpoint method needs --endpoint URL", "--endpoint")

    def measure(self, ctx, sections):
        from calibrate.endpoint import measure_endpoint

        sections["steps"], sections["api_overhead_s"] = measure_endpoint(
            ctx.arch,
            ctx.options["endpoint"],
            quick=ctx.quick,
            max_model_len=ctx.options.get("server_max_model_len") or ctx.max_model_len,
            store=ctx.store,
            point_timeout=ctx.point_timeout,
            on_point=ctx.on_point,
        )


class VllmMethod(Method):
    name = "vllm"
    summary = "real vLLM engine steps (scheduler + model + sampler) with dummy weights"

    def measure(self, ctx, sections):
        from calibrate.torch_steps import kv_budget_tokens
        from calibrate.vllm_steps import measure_engine_steps

        on_cpu = ctx.host == "cpu"
        sections["steps"] = measure_engine_steps(
            ctx.arch,
            host=ctx.host,
            quick=ctx.quick,
            store=ctx.store,
            point_timeout=ctx.point_timeout,
            max_model_len=min(ctx.max_model_len, 2048) if on_cpu else ctx.max_model_len,
            budget=ctx.budget,
            max_num_seqs=64 if on_cpu else 256,
            max_kv_tokens=kv_budget_tokens(ctx.arch, ctx.host, ctx.hw.memory_bytes) // 4,
            on_point=ctx.on_point,
        )


class TorchMethod(Method):
    name = "torch"
    summary = "step times of the model's architecture (random weights), matmul/copy micro-benchmarks"

    def check(self, host, hw, options):
        if hw.kind == "tpu":
            raise InputError(f"--host {host} is a TPU: measure it with the jax or tpu-aot method", "--method")

    def measure(self, ctx, sections):
        from calibrate.torch_steps import kv_budget_tokens, measure_steps

        steps, sections["microbenchmarks"] = measure_steps(
            ctx.arch,
            host=ctx.host,
            quick=ctx.quick,
            store=ctx.store,
            point_timeout=ctx.point_timeout,
            max_model_len=ctx.max_model_len,
            max_kv_tokens=kv_budget_tokens(ctx.arch, ctx.host, ctx.hw.memory_bytes),
            on_point=ctx.on_point,
        )
        # Engine steps (vllm) price the simulator's steps when both ran: they include vLLM's own work.
        sections.setdefault("steps", steps)


class JaxCompileMethod(Method):
    name = "jax"
    summary = "per-bucket compile times (cold, warm persistent cache) and step times on this JAX backend"

    def measure(self, ctx, sections):
        from calibrate.xla_compile import buckets_for, measure_compile

        sections["compile"] = measure_compile(
            ctx.arch,
            target="jax",
            hw=ctx.hw,
            buckets=buckets_for(ctx.budget, ctx.quick),
            quick=ctx.quick,
            store=ctx.store,
            point_timeout=ctx.point_timeout,
            on_point=ctx.on_point,
        )


class TpuAotMethod(Method):
    name = "tpu-aot"
    summary = (
        "vLLM's TPU serving step compiled by libtpu for --host tpu-* on a host without TPUs: the compiler's "
        "step estimates, compile times, peak HBM"
    )

    def check(self, host, hw, options):
        if hw.kind != "tpu":
            raise InputError(f"tpu-aot compiles for TPUs; --host {host} is a {hw.kind}", "--method")

    def measure(self, ctx, sections):
        from calibrate.tpu_aot import measure_tpu_aot
        from sim.hardware_kinds import HARDWARE_KINDS

        batch = HARDWARE_KINDS[ctx.hw.kind].batch_defaults(ctx.hw)
        steps, compile_section = measure_tpu_aot(
            ctx.arch,
            ctx.hw,
            host=ctx.host,
            tp=ctx.options["tp"],
            weight_dtype=ctx.options["weight_dtype"],
            kv_cache_dtype=ctx.options["kv_cache_dtype"],
            budget=ctx.budget,
            max_num_seqs=batch.max_num_seqs,
            max_model_len=ctx.max_model_len,
            quick=ctx.quick,
            store=ctx.store,
            point_timeout=ctx.point_timeout,
            on_point=ctx.on_point,
        )
        if steps is not None:
            sections["steps"] = steps
        sections["compile"] = compile_section


class KernelsMethod(Method):
    name = "kernels"
    summary = "servesim's Pallas attention kernel vs its jnp reference on this host's TPU (refuses elsewhere)"

    def measure(self, ctx, sections):
        from calibrate.kernels import measure_kernels

        sections["kernels"] = measure_kernels(
            ctx.arch,
            ctx.hw,
            host=ctx.host,
            quick=ctx.quick,
            store=ctx.store,
            point_timeout=ctx.point_timeout,
            on_point=ctx.on_point,
        )


class CollectivesMethod(Method):
    name = "collectives"
    summary = "all-reduce sweep fitted to alpha-beta (gloo between processes on CPU, NCCL on GPUs)"

    def check(self, host, hw, options):
        if hw.kind == "tpu":
            raise InputError(f"--host {host} is a TPU: measure it with the jax or tpu-aot method", "--method")

    def measure(self, ctx, sections):
        from calibrate.collectives import measure_allreduce

        ranks = ctx.options.get("ranks", 2)
        sections["collectives"] = [
            measure_allreduce(
                host=ctx.host, ranks=ranks, quick=ctx.quick, store=ctx.store, on_point=ctx.on_point
            )
        ]


class KernelTablesMethod(Method):
    name = "kernel-tables"
    summary = "GPU steps composed from NVIDIA's measured kernel tables (aiconfigurator-core), on any host"

    def check(self, host, hw, options):
        from calibrate.kernel_tables import hosts_with_tables

        if hw.kind != "gpu" or hw.kernel_tables is None:
            raise InputError(
                f"the kernel-tables method holds NVIDIA GPU tables for {', '.join(hosts_with_tables())}; not for {host}",
                "--host",
            )

    def measure(self, ctx, sections):
        from calibrate.kernel_tables import measure_kernel_tables
        from sim.hardware_kinds import HARDWARE_KINDS

        batch = HARDWARE_KINDS[ctx.hw.kind].batch_defaults(ctx.hw)
        steps, collectives = measure_kernel_tables(
            ctx.arch,
            ctx.hw,
            host=ctx.host,
            tp=ctx.options["tp"],
            weight_dtype=ctx.options["weight_dtype"],
            kv_cache_dtype=ctx.options["kv_cache_dtype"],
            vllm_version=ctx.options["vllm_version"],
            budget=max(ctx.budget, batch.max_num_batched_tokens),
            max_num_seqs=batch.max_num_seqs,
            max_model_len=min(ctx.arch.max_position_embeddings, 32768),
            quick=ctx.quick,
            on_point=ctx.on_point,
        )
        sections["steps"] = steps
        sections["collectives"] = [*sections.get("collectives", []), *collectives]


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        VllmMethod(),
        TorchMethod(),
        JaxCompileMethod(),
        TpuAotMethod(),
        CollectivesMethod(),
        EndpointMethod(),
        KernelsMethod(),
        KernelTablesMethod(),
    )
}


def default_methods(host: str, hw: HardwareSpec) -> list[str]:
    """What to measure when no --method is given: by the host and what is installed."""
    if hw.kind == "tpu":
        if installed("jax"):
            import jax

            if any(d.platform == "tpu" for d in jax.devices()):
                return ["jax"]
        return ["tpu-aot"]
    methods = [m for m, lib in (("torch", "torch"), ("jax", "jax")) if installed(lib)]
    if installed("vllm"):
        methods.insert(
            0, "vllm"
        )  # engine steps price the simulator's steps; torch then adds micro-benchmarks
    if host == "cpu" and installed("torch"):
        methods.append("collectives")
    if not methods:
        raise InputError(
            'nothing to measure with: install torch or jax (pip install "servesim[torch]")', "--method"
        )
    return methods
