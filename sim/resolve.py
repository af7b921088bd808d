"""Turn a validated Scenario into concrete numbers: catalog entries looked up, vLLM's defaults filled in (each
with the source it was taken from), the SLO chosen and the memory plan checked.

Everything that can be wrong only in combination (a model that does not fit, a budget below max_num_seqs)
is checked here and raised as an InputError naming the field to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim import catalog
from sim.architecture import ModelArchitecture
from sim.errors import InputError
from sim.hardware import HardwareSpec
from sim.profile import Profile, load_profile
from sim.replica.memory import GIB, MemoryPlan, estimate_activation_bytes, plan_memory
from sim.scenario import Scenario

# Sources of the defaults below (shared/reference/vllm_gpu_tpu_facts.md).
_SRC_BATCH = "vLLM v0.33 EngineArgs.get_batch_defaults for `vllm serve` (facts §2.1)"
_SRC_TPU_BATCH = (
    "vLLM v0.33 generic small-device defaults; the TPU table never matches tpu-inference's device name "
    "(facts §1.6, marked [inferred] there)"
)
_SRC_BLOCK_GPU = "vLLM CacheConfig.DEFAULT_BLOCK_SIZE = 16 (facts §2.1)"
_SRC_BLOCK_TPU = "tpu-inference get_page_size: next_pow2(max_model_len)//16 clamped to [16, 256], 16 above 8192 (facts §1.6)"
_SRC_UTIL = "vLLM v0.33 gpu_memory_utilization default 0.92 (facts §2.1)"
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


@dataclass(frozen=True, slots=True)
class ResolvedSLO:
    name: str  # the SLO class, or "custom"
    ttft_ms: float
    tpot_ms: float
    e2e_ms: float | None


@dataclass(frozen=True)
class ResolvedScenario:
    scenario: Scenario
    model: ModelArchitecture
    hardware: HardwareSpec
    engine: ResolvedEngine
    slo: ResolvedSLO
    memory: MemoryPlan
    tp: int
    replicas_per_host: int  # replicas sharing one host (a TP group never spans hosts)
    profile: Profile | None  # the scenario's calibration profile, read and validated once here
    provenance: dict[str, str] = field(default_factory=dict)  # knob -> where its value came from

    @property
    def num_hosts(self) -> int:
        return -(-self.scenario.fleet.replicas // self.replicas_per_host)


def _lookup(spec, cls, entries: dict, field: str):
    """An inline spec as given, or the catalog entry named by `spec` (models also take their name)."""
    if isinstance(spec, cls):
        return spec
    if spec not in entries:
        raise InputError(f"unknown {field} '{spec}'; catalog has {', '.join(sorted(entries))}", field)
    extra = {"name": spec} if cls is ModelArchitecture else {}
    return cls(**extra, **entries[spec])


def _lookup_model(spec: str | ModelArchitecture) -> ModelArchitecture:
    return _lookup(spec, ModelArchitecture, catalog.model_entries(), "model")


def _lookup_hardware(spec: str | HardwareSpec) -> HardwareSpec:
    return _lookup(spec, HardwareSpec, catalog.hardware_entries(), "hardware")


def _is_large_gpu(hw: HardwareSpec) -> bool:
    """vLLM's large tier: >= 70 GiB of device memory and not an A100."""
    return hw.memory_bytes >= 70 * GIB and "A100" not in hw.name


def _batch_defaults(hw: HardwareSpec) -> tuple[int, int, str]:
    if hw.kind == "tpu":
        return 2048, 256, _SRC_TPU_BATCH
    if hw.kind == "cpu":
        return 2048, 256, "vLLM v0.33 generic small-device defaults (facts §2.1)"
    if hw.memory_bytes >= 160 * GIB:
        return 16384, 1024, _SRC_BATCH
    if _is_large_gpu(hw):
        return 8192, 1024, _SRC_BATCH
    return 2048, 256, _SRC_BATCH


def _tpu_page_size(max_model_len: int) -> int:
    if max_model_len > 8192:
        return 16
    next_pow2 = 1 << (max_model_len - 1).bit_length()
    return min(256, max(16, next_pow2 // 16))


def _resolve_engine(sc: Scenario, arch: ModelArchitecture, hw: HardwareSpec) -> tuple[ResolvedEngine, dict]:
    eng = sc.engine
    prov: dict[str, str] = {}

    def pick(name: str, user_value, default, source: str):
        if user_value is not None:
            prov[name] = "scenario"
            return user_value
        prov[name] = source
        return default

    budget_default, seqs_default, batch_src = _batch_defaults(hw)
    max_model_len = pick("max_model_len", eng.max_model_len, arch.max_position_embeddings, _SRC_MAXLEN)
    if max_model_len > arch.max_position_embeddings:
        raise InputError(
            f"{max_model_len} exceeds the model's max_position_embeddings ({arch.max_position_embeddings})",
            "engine.max_model_len",
        )
    max_num_seqs = pick("max_num_seqs", eng.max_num_seqs, seqs_default, batch_src)
    budget = pick("max_num_batched_tokens", eng.max_num_batched_tokens, budget_default, batch_src)
    if not eng.enable_chunked_prefill and budget < max_model_len:
        # vLLM raises the budget so that one whole prompt always fits when it cannot chunk (facts §2.1).
        budget = max_model_len
        prov["max_num_batched_tokens"] += "; raised to max_model_len because chunked prefill is off"
    if eng.max_num_batched_tokens is None:
        budget = min(budget, max_num_seqs * max_model_len)
    if budget < max_num_seqs:
        raise InputError(
            f"max_num_batched_tokens ({budget}) must be >= max_num_seqs ({max_num_seqs}), as vLLM requires",
            "engine.max_num_batched_tokens",
        )
    if hw.kind == "tpu":
        block_size = pick("block_size", eng.block_size, _tpu_page_size(max_model_len), _SRC_BLOCK_TPU)
    else:
        block_size = pick("block_size", eng.block_size, 16, _SRC_BLOCK_GPU)
    util = pick("gpu_memory_utilization", eng.gpu_memory_utilization, 0.92, _SRC_UTIL)
    resolved = ResolvedEngine(
        max_num_batched_tokens=budget,
        max_num_seqs=max_num_seqs,
        block_size=block_size,
        gpu_memory_utilization=util,
        max_model_len=max_model_len,
        enable_chunked_prefill=eng.enable_chunked_prefill,
        enable_prefix_caching=eng.enable_prefix_caching,
    )
    return resolved, prov


def _resolve_slo(sc: Scenario, arch: ModelArchitecture) -> ResolvedSLO:
    classes = catalog.slo_classes()
    spec = sc.slo
    name = spec.slo_class
    if name is None:
        name = arch.name if arch.name in classes else "default"
    if name not in classes:
        raise InputError(f"unknown SLO class '{name}'; known: {', '.join(sorted(classes))}", "slo.class")
    base = classes[name]
    overridden = spec.ttft_ms is not None or spec.tpot_ms is not None
    return ResolvedSLO(
        name=f"{name} (overridden)" if overridden else name,
        ttft_ms=spec.ttft_ms if spec.ttft_ms is not None else base["ttft_ms"],
        tpot_ms=spec.tpot_ms if spec.tpot_ms is not None else base["tpot_ms"],
        e2e_ms=spec.e2e_ms,
    )


def resolve(sc: Scenario) -> ResolvedScenario:
    arch = _lookup_model(sc.model)
    hw = _lookup_hardware(sc.hardware)
    tp = sc.fleet.tensor_parallel_size
    if tp > hw.chips_per_host:
        raise InputError(
            f"{tp} chips per replica exceeds the {hw.chips_per_host} chips of one {hw.name} host",
            "fleet.tensor_parallel_size",
        )
    if arch.num_attention_heads % tp:
        raise InputError(
            f"{arch.num_attention_heads} attention heads do not split evenly over {tp} chips",
            "fleet.tensor_parallel_size",
        )
    per_host = sc.fleet.replicas_per_host or hw.chips_per_host // tp
    if per_host * tp > hw.chips_per_host:
        raise InputError(
            f"{per_host} replicas x TP{tp} need {per_host * tp} chips but a {hw.name} host has {hw.chips_per_host}",
            "fleet.replicas_per_host",
        )
    engine, prov = _resolve_engine(sc, arch, hw)

    if (
        hw.kind == "cpu"
        and sc.engine.kv_cache_space_gib is None
        and sc.engine.num_gpu_blocks_override is None
    ):
        raise InputError(
            "required on CPU hosts: vLLM's CPU backend sizes its KV cache from VLLM_CPU_KVCACHE_SPACE; give the "
            "value the server runs with",
            "engine.kv_cache_space_gib",
        )
    if sc.engine.activation_reserve_gib is not None:
        activation = int(sc.engine.activation_reserve_gib * GIB)
        prov["activation_reserve"] = "scenario"
    elif hw.kind == "tpu":
        activation = 0
        prov["activation_reserve"] = (
            "tpu-inference allocates KV before precompile; activations use the (1 - utilization) share (facts §1.6)"
        )
    else:
        activation = estimate_activation_bytes(arch, engine.max_num_batched_tokens, engine.max_num_seqs, tp)
        prov["activation_reserve"] = "estimated (sim/replica/memory.py:estimate_activation_bytes)"

    memory = plan_memory(
        arch,
        hw,
        tp=tp,
        gpu_memory_utilization=engine.gpu_memory_utilization,
        activation_bytes=activation,
        block_size=engine.block_size,
        num_gpu_blocks_override=sc.engine.num_gpu_blocks_override,
        kv_cache_bytes=None
        if sc.engine.kv_cache_space_gib is None
        else int(sc.engine.kv_cache_space_gib * GIB),
    )
    if memory.blocks_source == "derived" and memory.kv_bytes <= 0:
        raise InputError(
            f"{arch.name} does not fit: {memory.weight_bytes / 1e9:.1f} GB of weights + "
            f"{memory.activation_bytes / 1e9:.1f} GB activations per chip exceed "
            f"{memory.usable_bytes / 1e9:.1f} GB usable ({hw.name} x {engine.gpu_memory_utilization}); "
            "raise fleet.tensor_parallel_size or pick larger hardware",
            "model",
        )
    max_len_blocks = -(-engine.max_model_len // engine.block_size)
    if memory.num_blocks < max_len_blocks:
        raise InputError(
            f"one {engine.max_model_len}-token request needs {max_len_blocks} KV blocks but only "
            f"{memory.num_blocks} fit ({memory.num_token_slots} tokens); lower engine.max_model_len, raise "
            "gpu_memory_utilization or tensor_parallel_size, as vLLM would ask at startup",
            "engine.max_model_len",
        )
    slo = _resolve_slo(sc, arch)
    profile = load_profile(sc.profile) if sc.profile is not None else None
    prov["model"] = arch.source
    prov["hardware"] = hw.source
    return ResolvedScenario(
        scenario=sc,
        model=arch,
        hardware=hw,
        engine=engine,
        slo=slo,
        memory=memory,
        tp=tp,
        replicas_per_host=per_host,
        profile=profile,
        provenance=prov,
    )
