"""The scenario file: one pydantic schema for everything a simulation run needs.

A scenario names what is served (``model``), on what (``hardware``), how vLLM is configured (``engine``),
what traffic arrives (``workload``), how many replicas share it (``fleet``) and what counts as good
(``slo``). Omitted engine knobs take vLLM's own defaults (see ``sim/resolve.py``), so a scenario reads like a
``vllm serve`` command line plus a load test. ``docs/scenarios.md`` is generated from this module.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from sim.architecture import ModelArchitecture
from sim.hardware import HardwareSpec
from sim.plan.spec import PlanSpec
from sim.scenario_dynamics import (
    AdmissionSpec,
    AutoscalerSpec,
    FaultsSpec,
    MonteCarloSpec,
    RetrySpec,
    Variants,
    check_variants,
)
from sim.strict import StrictModel

# ---- workload: request lengths ---------------------------------------------------------------------


class FixedLengths(StrictModel):
    """Every request has the same prompt and output length (the harness's synthetic workloads)."""

    kind: Literal["fixed"]
    input_len: int = Field(..., ge=1, description="Prompt tokens.")
    output_len: int = Field(..., ge=1, description="Output tokens (ignore_eos: always generated in full).")


class RandomLengths(StrictModel):
    """Uniform integers in [len*(1-range_ratio), len*(1+range_ratio)], as `vllm bench serve --dataset-name
    random --random-range-ratio` draws them."""

    kind: Literal["random"]
    input_len: int = Field(..., ge=1)
    output_len: int = Field(..., ge=1)
    range_ratio: float = Field(0.0, ge=0.0, lt=1.0)


class LognormalLengths(StrictModel):
    """Log-normal prompt and output lengths given by their means and log-space sigmas, clipped to bounds."""

    kind: Literal["lognormal"]
    input_mean: float = Field(..., gt=0)
    input_sigma: float = Field(..., ge=0)
    output_mean: float = Field(..., gt=0)
    output_sigma: float = Field(..., ge=0)
    min_input_len: int = Field(1, ge=1)
    max_input_len: int = Field(8192, ge=1)
    min_output_len: int = Field(1, ge=1)
    max_output_len: int = Field(8192, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> LognormalLengths:
        if self.min_input_len > self.max_input_len:
            raise ValueError("min_input_len must be <= max_input_len")
        if self.min_output_len > self.max_output_len:
            raise ValueError("min_output_len must be <= max_output_len")
        return self


class ShareGPTLikeLengths(StrictModel):
    """A ShareGPT-shaped distribution without the dataset: log-normal lengths whose means are the seed talk's
    "~220 -> 280" tokens (seed_harness.md §3) and whose prompts are clipped to the harness filter
    4 <= prompt <= 8192. The sigmas are estimates of ShareGPT's spread (heavy right tail), not fitted to the
    dataset; point `kind: sharegpt_file` at a local copy for the real thing."""

    kind: Literal["sharegpt_like"]
    input_mean: float = Field(220.0, gt=0)
    input_sigma: float = Field(1.0, ge=0)
    output_mean: float = Field(280.0, gt=0)
    output_sigma: float = Field(0.9, ge=0)
    max_prompt_len: int = Field(8192, ge=4)
    max_output_len: int = Field(4096, ge=1)


class ShareGPTFileLengths(StrictModel):
    """Lengths from a local ShareGPT JSON (first human turn -> prompt, next turn -> completion), filtered
    4 <= prompt <= max_prompt_len and shuffled with the scenario seed, as the seed harness builds it.
    Token counts are characters / chars_per_token (no tokenizer in the core install), labelled approximate."""

    kind: Literal["sharegpt_file"]
    path: str
    max_prompt_len: int = Field(8192, ge=4)
    fixed_output_len: int | None = Field(None, ge=1)
    chars_per_token: float = Field(4.0, gt=0)


class TraceLengths(StrictModel):
    """A recorded trace (CSV or JSONL) with columns arrival_s, input_tokens, output_tokens. The trace fixes the
    arrival times too, so `workload.arrivals` must be left out."""

    kind: Literal["trace"]
    path: str


LengthSpec = Annotated[
    FixedLengths
    | RandomLengths
    | LognormalLengths
    | ShareGPTLikeLengths
    | ShareGPTFileLengths
    | TraceLengths,
    Field(discriminator="kind"),
]


# ---- workload: arrivals -----------------------------------------------------------------------------


class RatePoint(StrictModel):
    at_s: float = Field(..., ge=0, description="From this simulated time on ...")
    rate: float = Field(..., ge=0, description="... the base rate is this many requests/s.")


class FlashSpike(StrictModel):
    """Multiplies the rate by `multiplier` over [start_s, start_s+duration_s], ramping linearly up over ramp_s
    before the window and down over ramp_s after it."""

    start_s: float = Field(..., ge=0)
    duration_s: float = Field(..., gt=0)
    multiplier: float = Field(..., gt=0)
    ramp_s: float = Field(0.0, ge=0)


class Diurnal(StrictModel):
    """rate x (1 + amplitude * cos(2 pi (t - peak_at_s) / period_s)): a daily cycle peaking at peak_at_s."""

    period_s: float = Field(86400.0, gt=0)
    amplitude: float = Field(..., ge=0, le=1)
    peak_at_s: float = Field(0.0)


class ArrivalSpec(StrictModel):
    """When requests arrive. Gaps follow `vllm bench serve`: gamma(shape=burstiness, scale=1/(rate*burstiness)),
    so the mean gap is 1/rate and the coefficient of variation 1/sqrt(burstiness); the first request also waits
    one gap. Time-varying rates (schedule x spikes x diurnal) compose by time rescaling."""

    process: Literal["poisson", "gamma", "constant"] = Field(
        "poisson", description="poisson = gamma with burstiness 1; constant = evenly spaced."
    )
    rate: float | Literal["inf"] = Field(..., description="Base requests/s; 'inf' sends everything at t=0.")
    burstiness: float = Field(1.0, gt=0, description="Gamma shape (process: gamma); < 1 is burstier.")
    schedule: list[RatePoint] = Field(default_factory=list, description="Piecewise-constant base rate.")
    spikes: list[FlashSpike] = Field(default_factory=list)
    diurnal: Diurnal | None = None

    @field_validator("rate")
    @classmethod
    def _rate_positive(cls, value: float | str) -> float | str:
        if value != "inf" and (not math.isfinite(value) or value <= 0):
            raise ValueError("must be > 0 (or 'inf' for everything at t=0)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ArrivalSpec:
        if self.process == "poisson" and self.burstiness != 1.0:
            raise ValueError("burstiness applies to process 'gamma'; poisson is burstiness 1")
        if self.rate == "inf" and (self.schedule or self.spikes or self.diurnal):
            raise ValueError("rate 'inf' sends everything at t=0; schedule, spikes and diurnal do not apply")
        times = [p.at_s for p in self.schedule]
        if times != sorted(times):
            raise ValueError("schedule must be sorted by at_s")
        return self

    @property
    def is_instant(self) -> bool:
        return self.rate == "inf"


class WorkloadSpec(StrictModel):
    lengths: LengthSpec
    arrivals: ArrivalSpec | None = Field(None, description="Required unless lengths.kind is 'trace'.")
    ignore_eos: bool = Field(True, description="Outputs run to their full length (recorded as metadata).")
    request_timeout_s: float = Field(
        600.0, gt=0, description="Client timeout; the seed harness's default is 600 s. Late requests fail."
    )
    sessions: int | None = Field(
        None,
        ge=1,
        description="Distinct users; each request belongs to one drawn uniformly (for session_affinity).",
    )

    @model_validator(mode="after")
    def _arrivals_present(self) -> WorkloadSpec:
        is_trace = self.lengths.kind == "trace"
        if is_trace and self.arrivals is not None:
            raise ValueError("a trace carries its own arrival times; remove workload.arrivals")
        if not is_trace and self.arrivals is None:
            raise ValueError("workload.arrivals is required unless lengths.kind is 'trace'")
        return self


# ---- engine, fleet, SLO, cost ------------------------------------------------------------------------


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
    enable_prefix_caching: bool = Field(
        True, description="Recorded; hits need shared prefixes, which the built-in workloads do not have."
    )
    num_gpu_blocks_override: int | None = Field(None, ge=1, description="Force the KV capacity in blocks.")
    activation_reserve_gib: float | None = Field(
        None, ge=0, description="Memory kept for activations; default is an estimate (sim/replica/memory.py)."
    )
    runtime: Literal["cuda", "xla", "eager"] | None = Field(
        None, description="Executor path; default cuda on GPUs, xla on TPUs, eager on CPU hosts."
    )
    kv_cache_space_gib: float | None = Field(
        None,
        gt=0,
        description="KV cache per chip, GiB, instead of deriving it (required on CPU: VLLM_CPU_KVCACHE_SPACE).",
    )
    cuda: CudaSpec = Field(default_factory=CudaSpec, description="CUDA-path knobs (see engine.cuda).")
    xla: XlaSpec = Field(default_factory=XlaSpec, description="XLA-path knobs (see engine.xla).")


class FleetSpec(StrictModel):
    replicas: int = Field(1, ge=1, description="Identical vLLM replicas.")
    tensor_parallel_size: int = Field(1, ge=1, description="Chips per replica.")
    replicas_per_host: int | None = Field(
        None, ge=1, description="Replicas packed on one host (default: as many as its chips allow)."
    )
    interconnect: str | None = Field(
        None, description="Link the TP all-reduces use (a key of the hardware's links); default: its fastest."
    )
    collective_jitter_sigma: float | None = Field(
        None, ge=0, description="Log-normal sigma of per-rank all-reduce noise; default per link type."
    )
    router: Literal["round_robin", "least_outstanding", "least_kv", "session_affinity"] = Field(
        "round_robin",
        description="round_robin; least_outstanding (fewest waiting + running); least_kv (lowest KV-cache "
        "use); session_affinity (a session's requests go to the same replica while it is up).",
    )
    admission: AdmissionSpec = Field(
        default_factory=AdmissionSpec, description="Queue caps (see fleet.admission)."
    )
    retry: RetrySpec = Field(
        default_factory=RetrySpec, description="Retries of dropped requests (see fleet.retry)."
    )
    usd_per_chip_hour: float | None = Field(
        None, gt=0, description="Price of one chip-hour, for cost per good request (reported as 'scenario')."
    )


class SLOSpec(StrictModel):
    """Either an SLO class of the seed harness (slo_classes.yaml) or explicit thresholds; thresholds given
    alongside a class override it. With neither, the model's class is used, else 'default'."""

    slo_class: str | None = Field(None, alias="class")
    ttft_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)
    e2e_ms: float | None = Field(None, gt=0)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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


class SweepSpec(StrictModel):
    """Run many points: each series (a named set of overrides, e.g. one per hardware) over the grid (the
    Cartesian product of the listed values). Keys are dotted scenario paths."""

    series: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="name -> {dotted.key: value}."
    )
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted.key -> values to try.")

    @model_validator(mode="after")
    def _not_empty(self) -> SweepSpec:
        if not self.series and not self.grid:
            raise ValueError("a sweep needs series, grid, or both")
        if any(len(v) == 0 for v in self.grid.values()):
            raise ValueError("every grid key needs at least one value")
        return self


class RooflineCost(StrictModel):
    """Step time = max(FLOPs / (peak x flops_utilization), bytes / (bandwidth x mbu)) + step overhead.
    Left-out factors take the cited defaults in catalog/efficiency.yaml."""

    kind: Literal["roofline"] = "roofline"
    attention: Literal["roofline", "kernel"] = Field(
        "roofline",
        description="kernel: price attention with the profile's measured kernel times (its kernels section) "
        "instead of the roofline's attention FLOPs and KV reads.",
    )
    memory_bandwidth_utilization: float | None = Field(None, gt=0, le=1)
    flops_utilization: float | None = Field(None, gt=0, le=1)
    step_overhead_s: float | None = Field(None, ge=0)


class ConstantCost(StrictModel):
    """Every engine step takes step_s seconds, whatever it holds: for closed-form what-ifs and tests."""

    kind: Literal["constant"]
    step_s: float = Field(..., gt=0)


CostModelSpec = Annotated[RooflineCost | ConstantCost, Field(discriminator="kind")]


class MetricsSpec(StrictModel):
    window_s: float | None = Field(
        None,
        gt=0,
        description="Time-series window; default picks ~1 s, coarser for long runs (<= 2000 windows).",
    )
    per_request: bool = Field(
        False, description="Also put every request (with its ITL list) in summary.json."
    )


class Scenario(StrictModel):
    """What is served, on what, under which traffic, and what counts as good. At least one run bound
    is needed (`duration_s`, `num_requests`, or a trace); with several, the first reached ends arrivals."""

    name: str = Field(
        ..., min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", description="Names the results folder."
    )
    description: str = Field("", description="Free text shown nowhere but in the results.")
    seed: int = Field(0, ge=0, description="Seeds arrivals and lengths; same seed, same results.")
    model: str | ModelArchitecture = Field(..., description="Catalog name or inline architecture.")
    hardware: str | HardwareSpec = Field(..., description="Catalog name or inline datasheet.")
    engine: EngineSpec = Field(default_factory=EngineSpec, description="vLLM knobs (see engine).")
    workload: WorkloadSpec = Field(..., description="Request lengths and arrivals (see workload).")
    fleet: FleetSpec = Field(default_factory=FleetSpec, description="Replicas and routing (see fleet).")
    slo: SLOSpec = Field(default_factory=SLOSpec, description="What counts as a good request (see slo).")
    cost_model: CostModelSpec = Field(default_factory=RooflineCost, description="How step times are priced.")
    profile: str | None = Field(
        None,
        description="A calibrate profile (path, relative to this file): measured step and compile times.",
    )
    duration_s: float | None = Field(None, gt=0, description="Stop sending requests after this time.")
    num_requests: int | None = Field(None, ge=1, description="Stop after this many requests.")
    metrics: MetricsSpec = Field(default_factory=MetricsSpec, description="Time-series and dump options.")
    startup: StartupSpec = Field(default_factory=StartupSpec, description="Replica start-up (see startup).")
    sweep: SweepSpec | None = Field(None, description="Run a table of points instead of one (see sweep).")
    autoscaler: AutoscalerSpec | None = Field(
        None, description="Scale replicas on a metric (see autoscaler)."
    )
    faults: FaultsSpec | None = Field(None, description="Failures, notices and injected faults (see faults).")
    monte_carlo: MonteCarloSpec = Field(
        default_factory=MonteCarloSpec, description="Independent runs and failover risk (see monte_carlo)."
    )
    plan: PlanSpec | None = Field(None, description="What `plan` searches (see plan); ignored by simulate.")
    variants: Variants = Field(
        default_factory=dict,
        description="name -> {dotted.key: value}: the same scenario under each set of overrides, compared "
        "side by side.",
    )

    @model_validator(mode="after")
    def _bounded(self) -> Scenario:
        is_trace = self.workload.lengths.kind == "trace"
        if self.duration_s is None and self.num_requests is None and not is_trace:
            raise ValueError("set duration_s or num_requests so the run has an end")
        arrivals = self.workload.arrivals
        if arrivals is not None and arrivals.is_instant and self.num_requests is None:
            raise ValueError("rate 'inf' needs num_requests")
        check_variants(self.variants)
        if self.variants and self.sweep is not None:
            raise ValueError("a scenario has either variants or a sweep, not both")
        scaler = self.autoscaler
        if scaler is not None and not scaler.min_replicas <= self.fleet.replicas <= scaler.max_replicas:
            raise ValueError(
                f"fleet.replicas ({self.fleet.replicas}) must lie within autoscaler.min_replicas "
                f"({scaler.min_replicas}) and max_replicas ({scaler.max_replicas})"
            )
        return self
