"""The engine and start-up sections of a scenario: vLLM's engine knobs, its CUDA and XLA paths, and a
replica's start-up parts, owned by the runtime layer (sim/runtime/). sim/scenario.py composes them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sim.registry import RegistryKey
from sim.strict import StrictModel


def _runtimes():
    from sim.runtime.settings import RUNTIMES

    return RUNTIMES


class CudaSpec(StrictModel):
    """vLLM's CUDA path: shapes are dynamic; small uniform decode batches replay full CUDA graphs at the next
    capture size, mixed batches up to the largest size replay piecewise graphs, larger ones run eagerly."""

    cudagraph_capture_sizes: list[int] | None = Field(
        None, description="Explicit capture sizes; default is vLLM v0.33's list for max_num_seqs."
    )
    max_cudagraph_capture_size: int | None = Field(
        None, ge=1, description="Largest capture size (default min(2 x max_num_seqs, 512))."
    )
    enforce_eager: bool = Field(
        False, description="No CUDA graphs and no torch.compile (vLLM --enforce-eager)."
    )
    torch_compile_cache: Literal["cold", "warm"] = Field(
        "cold", description="Whether ~/.cache/vllm/torch_compile_cache already holds this model's graphs."
    )
    piecewise_overhead_per_layer_s: float | None = Field(
        None, ge=0, description="Extra host time per layer, piecewise steps."
    )
    eager_overhead_per_layer_s: float | None = Field(
        None, ge=0, description="Extra host time per layer, eager steps."
    )


class XlaSpec(StrictModel):
    """vLLM's TPU path (tpu-inference): every step runs at a precompiled (token bucket, request bucket) shape;
    precompile happens at startup; a shape not compiled yet stalls its step while XLA compiles it."""

    bucket_padding_gap: int = Field(0, ge=0, description="VLLM_TPU_BUCKET_PADDING_GAP: 0 = powers of two.")
    min_token_bucket: int = Field(16, ge=1, description="MIN_TOKEN_BUCKET.")
    extra_token_buckets: list[int] = Field(
        default_factory=list, description="additional_config compilation_sizes."
    )
    precompile: bool = Field(
        True, description="False = SKIP_JAX_PRECOMPILE=1: every shape compiles on first use."
    )
    precompile_token_buckets: list[int] | None = Field(
        None, description="Precompile only these token buckets; the others compile on first use."
    )
    compile_cache: Literal["cold", "warm"] = Field(
        "cold", description="Persistent XLA cache (VLLM_XLA_CACHE_PATH) empty, or holding every shape."
    )
    precompile_workers: int = Field(1, ge=1, description="NUM_PRECOMPILE_WORKERS.")
    compile_host_speedup: float = Field(
        1.0,
        gt=0,
        description="How much faster the serving host compiles than the host that measured the profile's "
        "compile times (their ratio of reference compile times, recorded in the profile): measured compile "
        "times are divided by it. 1 = as measured.",
    )
    backbone_compile_s: float | None = Field(
        None,
        gt=0,
        description="Cold compile of one model-forward bucket; default derived from published warm-ups.",
    )

    @field_validator("extra_token_buckets", "precompile_token_buckets")
    @classmethod
    def _positive(cls, values):
        if values is not None and any(v < 1 for v in values):
            raise ValueError("bucket sizes must be >= 1")
        return values


class KVOffloadSpec(StrictModel):
    """vLLM's KV offloading connector: cached blocks evicted from the device are kept in host memory and
    loaded back over the host link (PCIe) when a later prompt starts with them, instead of recomputed."""

    cpu_gib: float = Field(..., gt=0, description="Host memory for offloaded KV blocks, GiB per replica.")
    bandwidth_gbs: float | None = Field(
        None, gt=0, description="Host-link bandwidth per chip, GB/s one way (default: the chip's PCIe link)."
    )


class SpeculativeSpec(StrictModel):
    """vLLM's speculative decoding (--speculative-config): k proposed tokens verified per request per step."""

    method: Literal["ngram", "eagle", "draft_model"] = Field(
        ...,
        description="Proposer: ngram (prompt lookup), eagle (a draft head), draft_model (a smaller model).",
    )
    num_speculative_tokens: int = Field(..., ge=1, le=16, description="k, the tokens proposed per step.")
    acceptance_rate: float | list[float] | None = Field(
        None,
        description="Probability that proposal i passes given the ones before it did: one rate for every "
        "position or one per position. Default for eagle only: 0.55 (a mean of about 2 tokens per step at "
        "k = 3, as published for EAGLE-3 drafters); ngram and draft_model depend on the workload and the "
        "drafter, so give it.",
    )
    draft_model: str | None = Field(None, description="Catalog model that drafts (method draft_model).")

    @field_validator("acceptance_rate")
    @classmethod
    def _rates(cls, value):
        rates = value if isinstance(value, list) else [value] if value is not None else []
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ValueError("acceptance rates are probabilities in [0, 1]")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        rate = self.acceptance_rate
        if isinstance(rate, list) and len(rate) != self.num_speculative_tokens:
            raise ValueError(
                f"acceptance_rate has {len(rate)} positions for num_speculative_tokens "
                f"{self.num_speculative_tokens}"
            )
        if (self.method == "draft_model") != (self.draft_model is not None):
            raise ValueError("draft_model names the drafter of method draft_model, and only of it")
        return self


class EngineSpec(StrictModel):
    """vLLM engine knobs. Each left out takes vLLM's default for the hardware (sim/resolve.py cites them)."""

    max_num_batched_tokens: int | None = Field(None, ge=1, description="Per-step token budget.")
    max_num_seqs: int | None = Field(None, ge=1, description="Most requests running at once.")
    block_size: int | None = Field(None, ge=1, description="Tokens per KV-cache block (page).")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="Share of device memory vLLM may use."
    )
    max_model_len: int | None = Field(None, ge=2, description="Longest prompt + output a request may have.")
    enable_chunked_prefill: bool = Field(
        True, description="Off: a prompt waits until it fits one step whole."
    )
    weight_dtype: Literal["bfloat16", "fp8", "nvfp4"] = Field(
        "bfloat16",
        description="Serving precision of the weights: fp8 (1 byte each, e.g. vLLM --quantization fp8 or an "
        "FP8 checkpoint), nvfp4 (an NVFP4 checkpoint, half a byte each; Blackwell).",
    )
    kv_cache_dtype: Literal["auto", "fp8"] = Field(
        "auto",
        description="vLLM --kv-cache-dtype: auto keeps the model dtype, fp8 stores 1 byte per element.",
    )
    enable_prefix_caching: bool = Field(
        True,
        description="vLLM's automatic prefix caching (its default: on). Hits need requests with token identity: "
        "workload.prefix, workload.conversations, or traces with token ids or block hash ids.",
    )
    num_gpu_blocks_override: int | None = Field(None, ge=1, description="Force the KV capacity in blocks.")
    kv_offload: KVOffloadSpec | None = Field(
        None, description="A host-memory tier for prefix-cached KV blocks (off by default; see kv_offload)."
    )
    tokenize_s_per_token: float | None = Field(
        None,
        ge=0,
        description="The API server's tokenizer time per prompt token. vLLM's OpenAI server tokenizes on one "
        "thread, so requests queue for it one at a time before reaching the engine. Default: the published "
        "estimate (docs/references.md#vllm-frontend-tokenization); 0 when a profile measured the server's "
        "per-request overhead, or for in-process engines.",
    )
    activation_reserve_gib: float | None = Field(
        None,
        ge=0,
        le=1e4,
        description="Memory kept for activations; default is an estimate (sim/replica/memory.py).",
    )
    runtime: Annotated[str, RegistryKey(_runtimes, "runtime")] | None = Field(
        None, description="Executor path; default cuda on GPUs, xla on TPUs, eager on CPU hosts."
    )
    kv_cache_space_gib: float | None = Field(
        None,
        gt=0,
        le=1e5,
        description="KV cache per chip, GiB, instead of deriving it (required on CPU: VLLM_CPU_KVCACHE_SPACE).",
    )
    speculative: SpeculativeSpec | None = Field(
        None, description="Speculative decoding (off by default; see speculative)."
    )
    cuda: CudaSpec = Field(default_factory=CudaSpec, description="CUDA-path knobs (see engine.cuda).")
    xla: XlaSpec = Field(default_factory=XlaSpec, description="XLA-path knobs (see engine.xla).")


class StartupSpec(StrictModel):
    """A replica's time to ready = provision + container start + weight load + the runtime's own start."""

    provision_s: float | None = Field(
        None,
        ge=0,
        description="Acquiring a new machine or slice; default per hardware kind (catalog/runtime.yaml). "
        "A replica placed on a host that is already up skips it.",
    )
    stockout_probability: float = Field(
        0.0, ge=0, lt=1, description="Chance that one capacity request finds no stock and is retried."
    )
    stockout_retry_s: float = Field(60.0, ge=0, description="Wait before asking for capacity again.")
    container_start_s: float | None = Field(None, ge=0, description="Container and vLLM process start.")
    storage_bandwidth_gbs: float | None = Field(None, gt=0, description="Weight download bandwidth, GB/s.")
