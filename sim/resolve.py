"""Turn a validated Scenario into one complete, resolved configuration: catalog entries looked up, vLLM's
defaults filled in, the TP link chosen, the step-cost factors, the runtime and the start-up parts fixed,
the SLO chosen and the memory plan checked -- each value with the source it was taken from, in one
provenance map.

Everything downstream (the run, the fleet, replicas, runtimes, step costs) reads this object, never the raw
scenario; the scenario stays attached only for reports and studies, which show or vary what the user wrote.
Everything that can be wrong only in combination (a model that does not fit, a budget below max_num_seqs)
is checked here and raised as an InputError naming the field to change.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

from pydantic import ValidationError

from sim import catalog
from sim.architecture import ModelArchitecture
from sim.cost.base import DeviceTimeModel, StepCostModel
from sim.cost.collectives import TPLink, resolve_link
from sim.cost.factory import (
    COST_MODELS,
    CostInputs,
    CostSettings,
    build_step_model,
    check_profile_matches,
    resolve_cost,
)
from sim.cost.spec import RooflineCost
from sim.errors import InputError
from sim.fleet.disaggregation import KVTransfer, PrefillThenDecode
from sim.fleet.settings import FleetSettings
from sim.fleet.spec import RDMA_NIC_GBS
from sim.hardware import HardwareSpec
from sim.hardware_kinds import HARDWARE_KINDS, KVSizing
from sim.hf_config import architecture_from_config, config_path
from sim.loader import set_path
from sim.metrics.slo import SLO
from sim.profile import Profile
from sim.replica.acceptance import SpeculativeDecoding
from sim.replica.memory import GIB, MemoryPlan, estimate_activation_bytes, plan_memory
from sim.replica.scheduler import SchedulerConfig
from sim.runtime.engine import ResolvedEngine, resolve_engine
from sim.runtime.settings import RuntimeInputs, RuntimeSettings, resolve_runtime
from sim.runtime.startup import StartupPlan, resolve_startup
from sim.scenario import MetricsSpec, Scenario
from sim.shipped_profiles import choose_profile
from sim.strict import validation_error_to_input_error
from sim.traffic.workload import WorkloadPlan


@dataclass(frozen=True)
class ResolvedScenario:
    scenario: Scenario  # what the user wrote: for reports and studies only (the run reads the fields below)
    name: str
    seed: int
    model: ModelArchitecture
    hardware: HardwareSpec
    hardware_name: str  # the catalog key (or the inline datasheet's name): what price tables are keyed by
    tp: int
    engine: ResolvedEngine
    memory: MemoryPlan
    slo: SLO
    link: TPLink | None  # the interconnect of the TP group (None without TP)
    cost: CostSettings
    runtime: RuntimeSettings | None  # None with a constant step time, which bypasses the runtime layer
    startup: StartupPlan
    fleet: FleetSettings
    workload: WorkloadPlan
    metrics: MetricsSpec
    profile: Profile | None  # the scenario's calibration profile, read and validated once here
    kv_offload: OffloadPlan | None  # the host-memory KV tier, when the engine has one
    provenance: dict[str, str]  # "section.knob" -> where its value came from
    speculative: SpeculativePlan | None = None  # speculative decoding, when the engine has it
    pools: tuple[ResolvedPool, ...] = ()  # a fleet of several pools (empty: this scenario is the one pool)
    disaggregation: DisaggregationPlan | None = None  # prefill on one pool, decode on another

    @property
    def pool_list(self) -> tuple[ResolvedPool, ...]:
        """The fleet's pools: the scenario's `pools`, or the scenario itself as the one pool."""
        return self.pools or (ResolvedPool("fleet", 0, self),)

    @property
    def replicas_per_host(self) -> int:
        return self.fleet.replicas_per_host

    @property
    def num_hosts(self) -> int:
        return -(-self.fleet.replicas // self.fleet.replicas_per_host)

    @property
    def scheduler_config(self) -> SchedulerConfig:
        offload = self.kv_offload
        return SchedulerConfig(
            max_num_seqs=self.engine.max_num_seqs,
            max_num_batched_tokens=self.engine.max_num_batched_tokens,
            block_size=self.engine.block_size,
            num_blocks=self.memory.num_blocks,
            enable_chunked_prefill=self.engine.enable_chunked_prefill,
            enable_prefix_caching=self.engine.enable_prefix_caching,
            offload_blocks=offload.blocks if offload is not None else 0,
            load_s_per_block=offload.load_s_per_block if offload is not None else 0.0,
            speculative=self.speculative.decoding(self.seed) if self.speculative is not None else None,
        )

    def build_drafter(self) -> DeviceTimeModel | None:
        """The speculative proposer's device-time model (None: no proposer on the device)."""
        plan = self.speculative
        if plan is None or plan.drafter is None or plan.drafter_cost is None:  # ngram: host-side
            return None
        model = build_step_model(plan.drafter_cost, plan.drafter, self.hardware, self.tp, self.link)
        assert isinstance(model, DeviceTimeModel)
        return model

    @property
    def step_times(self) -> str:
        """'kernel tables', 'measured', 'compiler estimate', 'datasheet roofline' or 'constant (scenario)';
        with pools, each pool's."""
        if self.pools:
            return ", ".join(f"{p.name}: {p.resolved.cost.step_times}" for p in self.pools)
        return self.cost.step_times

    def build_step_model(self) -> DeviceTimeModel | StepCostModel:
        """The step-cost model the resolved cost settings describe (sim/cost/factory.py)."""
        return build_step_model(self.cost, self.model, self.hardware, self.tp, self.link)

    def provenance_of(self, section: str) -> dict[str, str]:
        """The provenance entries of one section ("engine", "cost", "runtime", ...), without the prefix."""
        prefix = section + "."
        return {k[len(prefix) :]: v for k, v in self.provenance.items() if k.startswith(prefix)}


def _lookup(spec, cls, entries: dict, field: str):
    """An inline spec as given, or the catalog entry named by `spec` (models also take their name)."""
    if isinstance(spec, cls):
        return spec
    if spec not in entries:
        raise InputError(f"unknown {field} '{spec}'; catalog has {', '.join(sorted(entries))}", field)
    extra = {"name": spec} if cls is ModelArchitecture else {}
    return cls(**extra, **entries[spec])


def lookup_model(spec: str | ModelArchitecture) -> ModelArchitecture:
    """A catalog name, an inline architecture, or a local model directory / config.json (sim/hf_config.py)."""
    if isinstance(spec, str) and spec not in catalog.model_entries():
        path = config_path(spec)
        if path is not None:
            return architecture_from_config(path)
    return _lookup(spec, ModelArchitecture, catalog.model_entries(), "model")


def lookup_hardware(spec: str | HardwareSpec) -> HardwareSpec:
    return _lookup(spec, HardwareSpec, catalog.hardware_entries(), "hardware")


def _resolve_slo(sc: Scenario, arch: ModelArchitecture) -> SLO:
    classes = catalog.slo_classes()
    spec = sc.slo
    name = spec.slo_class
    if name is None:
        name = arch.name if arch.name in classes else "default"
    if name not in classes:
        raise InputError(f"unknown SLO class '{name}'; known: {', '.join(sorted(classes))}", "slo.class")
    base = classes[name]
    overridden = spec.ttft_ms is not None or spec.tpot_ms is not None
    return SLO(
        name=f"{name} (overridden)" if overridden else name,
        ttft_ms=spec.ttft_ms if spec.ttft_ms is not None else base["ttft_ms"],
        tpot_ms=spec.tpot_ms if spec.tpot_ms is not None else base["tpot_ms"],
        e2e_ms=spec.e2e_ms,
    )


def _placement(sc: Scenario, arch: ModelArchitecture, hw: HardwareSpec) -> tuple[int, int]:
    """(TP, replicas per host), checked against the host and the model's heads."""
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
    return tp, per_host


def _memory(
    sc: Scenario, arch: ModelArchitecture, hw: HardwareSpec, engine: ResolvedEngine, tp: int, prov: dict
) -> MemoryPlan:
    spec = sc.engine
    sizing = HARDWARE_KINDS[hw.kind].kv_sizing
    if sizing is KVSizing.GIVEN and spec.kv_cache_space_gib is None and spec.num_gpu_blocks_override is None:
        raise InputError(
            f"required on {hw.kind} hosts: vLLM's CPU backend sizes its KV cache from VLLM_CPU_KVCACHE_SPACE; "
            "give the value the server runs with",
            "engine.kv_cache_space_gib",
        )
    if spec.activation_reserve_gib is not None:
        activation = int(spec.activation_reserve_gib * GIB)
        prov["engine.activation_reserve"] = "scenario"
    elif sizing is KVSizing.AFTER_WEIGHTS:
        activation = 0
        prov["engine.activation_reserve"] = (
            "tpu-inference allocates KV before precompile; activations use the (1 - utilization) share "
            "(docs/references.md#kv-cache-memory)"
        )
    else:
        activation = estimate_activation_bytes(arch, engine.max_num_batched_tokens, engine.max_num_seqs, tp)
        prov["engine.activation_reserve"] = "estimated (sim/replica/memory.py:estimate_activation_bytes)"
    memory = plan_memory(
        arch,
        hw,
        tp=tp,
        gpu_memory_utilization=engine.gpu_memory_utilization,
        activation_bytes=activation,
        block_size=engine.block_size,
        num_gpu_blocks_override=spec.num_gpu_blocks_override,
        kv_cache_bytes=None if spec.kv_cache_space_gib is None else int(spec.kv_cache_space_gib * GIB),
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
    return memory


def _prefixed(section: str, entries: dict[str, str]) -> dict[str, str]:
    return {f"{section}.{k}": v for k, v in entries.items()}


def _with_dtypes(arch: ModelArchitecture, sc: Scenario) -> ModelArchitecture:
    """The model at the serving precision the engine section asks for (fp8 weights, fp8 KV cache)."""
    update: dict[str, float] = {}
    weight_bytes = {"fp8": 1.0, "nvfp4": 0.5}.get(sc.engine.weight_dtype)
    if weight_bytes is not None:
        update["weight_dtype_bytes"] = weight_bytes
    if sc.engine.kv_cache_dtype == "fp8":
        update["kv_dtype_bytes"] = 1
    return arch.model_copy(update=update) if update else arch


@dataclass(frozen=True)
class ResolvedPool:
    """One pool of a fleet: its name, its place in the scenario's order and its replicas' configuration,
    resolved as the scenario under the pool's overrides."""

    name: str
    index: int
    resolved: ResolvedScenario

    @property
    def weight(self) -> float:
        return self.resolved.scenario.fleet.pool_weight

    @property
    def spill_waiting(self) -> int:
        return self.resolved.scenario.fleet.spill_waiting


def _resolve_pools(sc: Scenario) -> tuple[ResolvedPool, ...]:
    """Each pool: the scenario under the pool's overrides, validated and resolved like any scenario (a bad
    pool exits 2 naming it). Block hashes are the fleet's, so pools must share a block size to share them."""
    if not sc.pools:
        return ()
    base = sc.model_dump(by_alias=True)
    base["pools"], base["variants"], base["disaggregation"] = {}, {}, None
    pools = []
    for index, (name, changes) in enumerate(sc.pools.items()):
        data = copy.deepcopy(base)
        for key, value in changes.items():
            set_path(data, key.split("."), value, source=f"pools.{name}")
        try:
            pool = resolve(Scenario.model_validate(data))
        except ValidationError as err:
            error = validation_error_to_input_error(err)
            raise InputError(f"pool '{name}': {error}", f"pools.{name}") from None
        except InputError as err:
            raise InputError(f"pool '{name}': {err}", f"pools.{name}") from None
        pools.append(ResolvedPool(name, index, pool))
    sizes = {p.resolved.engine.block_size for p in pools}
    caching = any(p.resolved.engine.enable_prefix_caching for p in pools)
    if caching and len(sizes) > 1 and sc.workload.prefix is not None:
        raise InputError(
            f"pools use KV block sizes {sorted(sizes)}: prefix caching needs one block size across the fleet "
            "(set engine.block_size in every pool, or engine.enable_prefix_caching: false)",
            "pools",
        )
    return tuple(pools)


@dataclass(frozen=True)
class DisaggregationPlan:
    """Prefill/decode disaggregation, resolved: the two pools by index and the KV transfer between them."""

    prefill_pool: int
    decode_pool: int
    transfer: KVTransfer

    def phases(self) -> PrefillThenDecode:
        return PrefillThenDecode(self.prefill_pool, self.decode_pool, self.transfer)


def _disaggregation(sc: Scenario, pools: tuple[ResolvedPool, ...], prov: dict) -> DisaggregationPlan | None:
    spec = sc.disaggregation
    if spec is None:
        return None
    index = {p.name: p for p in pools}
    prefill, decode = index[spec.prefill_pool], index[spec.decode_pool]
    hw = prefill.resolved.hardware
    if spec.kv_link is not None:
        if spec.kv_link not in hw.links:
            raise InputError(
                f"{hw.name} has no link '{spec.kv_link}'; it has {', '.join(sorted(hw.links))}",
                "disaggregation.kv_link",
            )
        bandwidth, source = hw.links[spec.kv_link], f"{spec.kv_link} (datasheet: {hw.source})"
    elif spec.kv_bandwidth_gbs is not None:
        bandwidth, source = spec.kv_bandwidth_gbs, "scenario"
    else:
        bandwidth, source = (
            RDMA_NIC_GBS,
            "one 400 Gb/s RDMA NIC per chip (docs/references.md#disaggregated-prefill)",
        )
    per_token = prefill.resolved.memory.kv_bytes_per_token
    transfer = KVTransfer(per_token, bandwidth, spec.kv_latency_s)
    prov["disaggregation"] = (
        f"prefill on {prefill.name}, decode on {decode.name}; KV {per_token} bytes per token per chip over "
        f"{bandwidth:g} GB/s ({source}) + {spec.kv_latency_s * 1e3:g} ms "
        f"({'scenario' if 'kv_latency_s' in spec.model_fields_set else 'estimated'}): "
        f"{transfer.seconds(1000) * 1e3:.2f} ms for a 1000-token prompt"
    )
    return DisaggregationPlan(prefill.index, decode.index, transfer)


@dataclass(frozen=True)
class SpeculativePlan:
    """Speculative decoding, resolved: what the scheduler draws from and what prices the proposer."""

    method: str
    num_speculative_tokens: int
    acceptance: tuple[float, ...]  # per proposed position
    drafter: ModelArchitecture | None  # the model that proposes on the device (None: ngram, on the host)
    drafter_cost: CostSettings | None  # its datasheet roofline on the target's hardware

    def decoding(self, seed: int) -> SpeculativeDecoding:
        return SpeculativeDecoding(self.num_speculative_tokens, self.acceptance, seed)


EAGLE_DEFAULT_ACCEPTANCE = 0.55  # docs/references.md#speculative-decoding


def _speculative(
    sc: Scenario, arch: ModelArchitecture, engine, cost_inputs: CostInputs, prov: dict
) -> SpeculativePlan | None:
    spec = sc.engine.speculative
    if spec is None:
        prov["engine.speculative"] = "off (vLLM's default)"
        return None
    k = spec.num_speculative_tokens
    field = "engine.speculative"
    if engine.max_num_batched_tokens < engine.max_num_seqs * (1 + k):
        raise InputError(
            f"max_num_batched_tokens {engine.max_num_batched_tokens} cannot hold max_num_seqs "
            f"{engine.max_num_seqs} x (1 + {k}) verify tokens; lower k or max_num_seqs, or raise the budget",
            field + ".num_speculative_tokens",
        )
    rate = spec.acceptance_rate
    if rate is None:
        if spec.method != "eagle":
            raise InputError(
                f"{spec.method}'s acceptance depends on the workload and drafter: give acceptance_rate",
                field + ".acceptance_rate",
            )
        rate, source = EAGLE_DEFAULT_ACCEPTANCE, "EAGLE-3 default (docs/references.md#speculative-decoding)"
    else:
        source = "scenario"
    acceptance = tuple(rate) if isinstance(rate, list) else (float(rate),) * k
    drafter: ModelArchitecture | None = None
    if spec.method == "eagle":
        drafter = arch.model_copy(update={"name": f"{arch.name} EAGLE head", "num_layers": 1})
    elif spec.method == "draft_model":
        assert spec.draft_model is not None
        try:
            drafter = _with_dtypes(lookup_model(spec.draft_model), sc)
        except InputError as error:
            raise InputError(error.message, field + ".draft_model") from None
        if drafter.vocab_size != arch.vocab_size:
            raise InputError(
                f"draft model {drafter.name} has a vocabulary of {drafter.vocab_size}, the target "
                f"{arch.vocab_size}: proposals must be the target's tokens",
                field + ".draft_model",
            )
    drafter_cost = None
    if drafter is not None:
        inputs = replace(cost_inputs, model=drafter, profile=None, profile_path=None)
        drafter_cost = COST_MODELS["roofline"].resolve(RooflineCost(), inputs)
    mean = SpeculativeDecoding(k, acceptance).mean_tokens_per_step
    prov[field] = (
        f"{spec.method}, k = {k}, acceptance {', '.join(f'{p:g}' for p in acceptance)} ({source}): "
        f"{mean:.2f} tokens per step on average; proposer "
        + (f"{drafter.name} priced by the datasheet roofline" if drafter is not None else "on the host")
    )
    return SpeculativePlan(spec.method, k, acceptance, drafter, drafter_cost)


@dataclass(frozen=True)
class OffloadPlan:
    blocks: int  # KV blocks the host tier holds
    load_s_per_block: float  # one block back over the host link (each chip loads its own shard at once)


def _offload(sc: Scenario, hw: HardwareSpec, memory: MemoryPlan, tp: int, prov: dict) -> OffloadPlan | None:
    spec = sc.engine.kv_offload
    if spec is None:
        prov["engine.kv_offload"] = "off (vLLM's default)"
        return None
    block_bytes_chip = memory.kv_bytes_per_token * memory.block_size
    bandwidth, source = spec.bandwidth_gbs, "scenario"
    if bandwidth is None:
        pcie = [(name, gbs) for name, gbs in hw.links.items() if name.startswith("pcie")]
        if not pcie:
            raise InputError(
                f"{hw.name} has no PCIe link in the catalog: give the host-link bandwidth",
                "engine.kv_offload.bandwidth_gbs",
            )
        name, bandwidth = max(pcie, key=lambda x: x[1])
        source = f"{name} (datasheet: {hw.source})"
    blocks = int(spec.cpu_gib * GIB // (block_bytes_chip * tp))
    load = block_bytes_chip / (bandwidth * 1e9)
    prov["engine.kv_offload"] = (
        f"{spec.cpu_gib:g} GiB of host memory = {blocks} blocks; a block loads in {load * 1e6:.1f} us over "
        f"{bandwidth:g} GB/s ({source})"
    )
    return OffloadPlan(blocks, load)


def _tokenizer(sc: Scenario, api_overhead_s: float) -> tuple[float, str]:
    """The API server's tokenizer time per prompt token, and where it came from."""
    given = sc.engine.tokenize_s_per_token
    if given is not None:
        return given, f"{given} s per prompt token (scenario)"
    if api_overhead_s:
        return 0.0, "0: inside the per-request API overhead the profile measured"
    entry = catalog.runtime_defaults()["frontend"]["tokenize_s_per_token"]
    return float(
        entry["value"]
    ), f"{entry['value']} s per prompt token ({entry['provenance']}: {entry['source']})"


def resolve(sc: Scenario) -> ResolvedScenario:
    arch = _with_dtypes(lookup_model(sc.model), sc)
    hw = lookup_hardware(sc.hardware)
    hardware_name = sc.hardware if isinstance(sc.hardware, str) else hw.name
    kind = HARDWARE_KINDS[hw.kind]
    tp, per_host = _placement(sc, arch, hw)
    engine, engine_prov = resolve_engine(sc.engine, arch, hw)
    prov = _prefixed("engine", engine_prov)
    memory = _memory(sc, arch, hw, engine, tp, prov)
    slo = _resolve_slo(sc, arch)
    choice = choose_profile(
        sc.profile,
        hardware=hardware_name if isinstance(sc.hardware, str) else None,
        model=arch.name,
        tp=tp,
        weight_dtype=sc.engine.weight_dtype,
        kv_cache_dtype=sc.engine.kv_cache_dtype,
        priced_by_steps=isinstance(sc.cost_model, RooflineCost) and sc.cost_model.attention != "kernel",
    )
    profile, profile_path = choice.profile, choice.path
    prov["profile"] = choice.reason
    measured = profile.collectives if profile is not None else []
    link = resolve_link(hw, tp, sc.fleet.interconnect, sc.fleet.collective_jitter_sigma, measured)
    cost_inputs = CostInputs(
        model=arch,
        hardware=hw,
        catalog_section=kind.catalog_section,
        tp=tp,
        profile=profile,
        profile_path=profile_path,
    )
    cost = resolve_cost(sc.cost_model, cost_inputs)
    speculative = _speculative(sc, arch, engine, cost_inputs, prov)
    if profile is not None and profile_path is not None:
        on = hardware_name if isinstance(sc.hardware, str) else None
        check_profile_matches(
            profile, arch.name, on, tp, profile_path, sc.engine.weight_dtype, sc.engine.kv_cache_dtype
        )
    runtime = (
        resolve_runtime(RuntimeInputs(sc.engine, engine, arch, hw, tp, link, profile))
        if cost.uses_runtime
        else None
    )
    startup = resolve_startup(
        sc.startup, kind.catalog_section, arch.weight_bytes, profile.startup if profile is not None else []
    )
    api_overhead_s = profile.api_overhead_s or 0.0 if profile is not None else 0.0
    tokenize_s_per_token, prov["engine.tokenize_s_per_token"] = _tokenizer(sc, api_overhead_s)
    fleet = FleetSettings(
        replicas=sc.fleet.replicas,
        tensor_parallel_size=tp,
        replicas_per_host=per_host,
        router=sc.fleet.router,
        admission=sc.fleet.admission,
        retry=sc.fleet.retry,
        autoscaler=sc.autoscaler,
        faults=sc.faults,
        stockout_probability=startup.stockout_probability,
        stockout_retry_s=startup.stockout_retry_s,
        request_timeout_s=sc.workload.request_timeout_s,
        max_model_len=engine.max_model_len,
        api_overhead_s=api_overhead_s,
        tokenize_s_per_token=tokenize_s_per_token,
        max_concurrency=sc.workload.max_concurrency,
        enable_prefix_caching=engine.enable_prefix_caching,
        block_size=engine.block_size,
        usd_per_chip_hour=sc.fleet.usd_per_chip_hour,
    )
    prov |= {"model": arch.source, "hardware": hw.source}
    prov["fleet.api_overhead_s"] = (
        f"{api_overhead_s} per request, measured by calibrate against a live server ({profile_path})"
        if api_overhead_s
        else "none (no measured API overhead in a profile)"
    )
    prov |= _prefixed("cost", cost.provenance)
    if link is not None:
        prov |= _prefixed("link", link.provenance)
    if runtime is not None:
        prov |= _prefixed("runtime", runtime.provenance)
    prov |= _prefixed("startup", startup.provenance)
    pools = _resolve_pools(sc)
    return ResolvedScenario(
        scenario=sc,
        name=sc.name,
        seed=sc.seed,
        model=arch,
        hardware=hw,
        hardware_name=hardware_name,
        tp=tp,
        engine=engine,
        memory=memory,
        slo=slo,
        link=link,
        cost=cost,
        runtime=runtime,
        startup=startup,
        fleet=fleet,
        workload=WorkloadPlan(sc.workload, sc.num_requests, sc.duration_s),
        metrics=sc.metrics,
        profile=profile,
        kv_offload=_offload(sc, hw, memory, tp, prov),
        provenance=prov,
        speculative=speculative,
        pools=pools,
        disaggregation=_disaggregation(sc, pools, prov),
    )
