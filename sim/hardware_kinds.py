"""Hardware kinds (gpu, tpu, cpu): everything that differs by kind of device, in one table.

A kind fixes vLLM's defaults for the device (batch limits, KV block size), how the KV cache is sized, which
runtime path serves it by default, and which section of the catalog's efficiency and start-up defaults
applies. Adding a kind of device is one row here plus catalog entries for its chips (catalog/hardware.yaml)
and defaults (catalog/efficiency.yaml, catalog/runtime.yaml); nothing else names the kinds.

Sources: docs/references.md, sections "vLLM engine defaults", "TPU page size" and "KV-cache memory".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # sim/hardware.py checks kinds against this table: no import back at run time
    from sim.hardware import HardwareSpec

GIB = 1024**3

_SRC_BATCH = (
    "vLLM v0.33 EngineArgs.get_batch_defaults for `vllm serve` (docs/references.md#vllm-engine-defaults)"
)
_SRC_SMALL = "vLLM v0.33 generic small-device defaults (docs/references.md#vllm-engine-defaults)"
_SRC_TPU_BATCH = (
    "vLLM v0.33 generic small-device defaults; the TPU table never matches tpu-inference's device name "
    "(docs/references.md#vllm-engine-defaults; inferred from the code)"
)
_SRC_BLOCK_GPU = "vLLM CacheConfig.DEFAULT_BLOCK_SIZE = 16 (docs/references.md#vllm-engine-defaults)"
_SRC_BLOCK_TPU = (
    "tpu-inference get_page_size: next_pow2(max_model_len)//16 clamped to [16, 256], 16 above 8192 "
    "(docs/references.md#tpu-page-size)"
)


class KVSizing(Enum):
    """How the serving engine sizes its KV cache on this kind of device (docs/references.md#kv-cache-memory)."""

    PROFILED = "memory x utilization - weights - activations of a profiling pass"  # vLLM on GPUs
    AFTER_WEIGHTS = "memory x utilization - weights (precompile runs after KV allocation)"  # tpu-inference
    GIVEN = "given by the operator (VLLM_CPU_KVCACHE_SPACE)"  # vLLM's CPU backend


@dataclass(frozen=True)
class BatchDefaults:
    max_num_batched_tokens: int
    max_num_seqs: int
    source: str


@dataclass(frozen=True)
class HardwareKind:
    name: str
    runtimes: tuple[str, ...]  # keys of sim/runtime/settings.py RUNTIMES that serve it; the first by default
    batch_defaults: Callable[[HardwareSpec], BatchDefaults]
    block_size: Callable[[int], tuple[int, str]]  # max_model_len -> (tokens per KV block, source)
    kv_sizing: KVSizing
    catalog_section: str  # key of this kind's entries in catalog/efficiency.yaml and catalog/runtime.yaml


def _gpu_batch(hw: HardwareSpec) -> BatchDefaults:
    """vLLM's tiers: >= 160 GiB, >= 70 GiB and not an A100, else small."""
    if hw.memory_bytes >= 160 * GIB:
        return BatchDefaults(16384, 1024, _SRC_BATCH)
    if hw.memory_bytes >= 70 * GIB and "A100" not in hw.name:
        return BatchDefaults(8192, 1024, _SRC_BATCH)
    return BatchDefaults(2048, 256, _SRC_BATCH)


def _gpu_block(max_model_len: int) -> tuple[int, str]:
    return 16, _SRC_BLOCK_GPU


def tpu_page_size(max_model_len: int) -> int:
    if max_model_len > 8192:
        return 16
    next_pow2 = 1 << (max_model_len - 1).bit_length()
    return min(256, max(16, next_pow2 // 16))


HARDWARE_KINDS: dict[str, HardwareKind] = {
    "gpu": HardwareKind(
        name="gpu",
        runtimes=("cuda",),
        batch_defaults=_gpu_batch,
        block_size=_gpu_block,
        kv_sizing=KVSizing.PROFILED,
        catalog_section="gpu",
    ),
    "tpu": HardwareKind(
        name="tpu",
        runtimes=("xla",),
        batch_defaults=lambda hw: BatchDefaults(2048, 256, _SRC_TPU_BATCH),
        block_size=lambda max_model_len: (tpu_page_size(max_model_len), _SRC_BLOCK_TPU),
        kv_sizing=KVSizing.AFTER_WEIGHTS,
        catalog_section="tpu",
    ),
    "cpu": HardwareKind(
        name="cpu",
        runtimes=("eager",),
        batch_defaults=lambda hw: BatchDefaults(2048, 256, _SRC_SMALL),
        block_size=_gpu_block,
        kv_sizing=KVSizing.GIVEN,
        catalog_section="cpu",
    ),
}
