"""The vLLM engine configuration in force: the scenario's engine knobs with vLLM's defaults for the device
filled in, each value with the source it was taken from (sim/hardware_kinds.py holds the per-kind defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.architecture import ModelArchitecture
from sim.errors import InputError
from sim.hardware import HardwareSpec
from sim.hardware_kinds import HARDWARE_KINDS

if TYPE_CHECKING:  # the engine section names RUNTIMES (a registry key): no import back at run time
    from sim.runtime.spec import EngineSpec

_SRC_UTIL = "vLLM v0.33 gpu_memory_utilization default 0.92 (docs/references.md#vllm-engine-defaults)"
_SRC_MAXLEN = "vLLM default: the model's max_position_embeddings"


@dataclass(frozen=True, slots=True)
class ResolvedEngine:
    """The vLLM engine configuration in force, after defaults."""

    max_num_batched_tokens: int
    max_num_seqs: int
    block_size: int
    gpu_memory_utilization: float
    max_model_len: int
    enable_chunked_prefill: bool
    enable_prefix_caching: bool


def resolve_engine(
    spec: EngineSpec, arch: ModelArchitecture, hw: HardwareSpec
) -> tuple[ResolvedEngine, dict[str, str]]:
    """The engine in force and, per knob, where its value came from ("scenario" or the default's source)."""
    kind = HARDWARE_KINDS[hw.kind]
    prov: dict[str, str] = {}

    def pick(name: str, user_value, default, source: str):
        if user_value is not None:
            prov[name] = "scenario"
            return user_value
        prov[name] = source
        return default

    batch = kind.batch_defaults(hw)
    max_model_len = pick("max_model_len", spec.max_model_len, arch.max_position_embeddings, _SRC_MAXLEN)
    if max_model_len > arch.max_position_embeddings:
        raise InputError(
            f"{max_model_len} exceeds the model's max_position_embeddings ({arch.max_position_embeddings})",
            "engine.max_model_len",
        )
    max_num_seqs = pick("max_num_seqs", spec.max_num_seqs, batch.max_num_seqs, batch.source)
    budget = pick(
        "max_num_batched_tokens", spec.max_num_batched_tokens, batch.max_num_batched_tokens, batch.source
    )
    if not spec.enable_chunked_prefill and budget < max_model_len:
        # vLLM raises the budget so that one whole prompt always fits when it cannot chunk.
        budget = max_model_len
        prov["max_num_batched_tokens"] += "; raised to max_model_len because chunked prefill is off"
    if spec.max_num_batched_tokens is None:
        budget = min(budget, max_num_seqs * max_model_len)
    if budget < max_num_seqs:
        raise InputError(
            f"max_num_batched_tokens ({budget}) must be >= max_num_seqs ({max_num_seqs}), as vLLM requires",
            "engine.max_num_batched_tokens",
        )
    default_block, block_source = kind.block_size(max_model_len)
    block_size = pick("block_size", spec.block_size, default_block, block_source)
    util = pick("gpu_memory_utilization", spec.gpu_memory_utilization, 0.92, _SRC_UTIL)
    engine = ResolvedEngine(
        max_num_batched_tokens=budget,
        max_num_seqs=max_num_seqs,
        block_size=block_size,
        gpu_memory_utilization=util,
        max_model_len=max_model_len,
        enable_chunked_prefill=spec.enable_chunked_prefill,
        enable_prefix_caching=spec.enable_prefix_caching,
    )
    return engine, prov
