"""The scenario file: one pydantic schema for everything a simulation run needs.

A scenario names what is served (``model``), on what (``hardware``), how vLLM is configured (``engine``),
what traffic arrives (``workload``), how many replicas share it (``fleet``) and what counts as good
(``slo``). Omitted engine knobs take vLLM's own defaults (see ``sim/resolve.py``), so a scenario reads like a
``vllm serve`` command line plus a load test. ``docs/scenarios.md`` is generated from this module.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from sim.architecture import ModelArchitecture
from sim.cost.spec import CostModelSpec, RooflineCost
from sim.fleet.spec import AutoscalerSpec, DisaggregationSpec, FaultsSpec, FleetSpec
from sim.hardware import HardwareSpec
from sim.runtime.spec import EngineSpec, StartupSpec
from sim.scenario_studies import MonteCarloSpec, PlanSpec, SweepSpec, Variants, check_pools, check_variants
from sim.strict import FilePath, StrictModel
from sim.traffic.spec import WorkloadSpec


class SLOSpec(StrictModel):
    """Either an SLO class of the seed harness (slo_classes.yaml) or explicit thresholds; thresholds given
    alongside a class override it. With neither, the model's class is used, else 'default'."""

    slo_class: str | None = Field(None, alias="class")
    ttft_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)
    e2e_ms: float | None = Field(None, gt=0)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MetricsSpec(StrictModel):
    window_s: float | None = Field(
        None,
        ge=0.01,
        description="Time-series window; default picks ~1 s, coarser for long runs (<= 2000 windows).",
    )
    per_request: bool = Field(
        False, description="Also put every request (with its ITL list) in summary.json."
    )


class LimitsSpec(StrictModel):
    """Bounds on what one scenario may expand to, checked before anything runs: a typo (a rate of 1e9, a
    1 ms metrics window over a day) is refused with the computed size instead of exhausting the machine.
    Raise them when the size is meant."""

    max_requests: int = Field(
        10_000_000, ge=1, description="Requests one run may send (about 2 KB of memory each while it runs)."
    )
    max_windows: int = Field(1_000_000, ge=1, description="Time-series windows one run may keep.")
    max_runs: int = Field(
        10_000, ge=1, description="Runs one study or sweep may take (variants x runs, points)."
    )


class Scenario(StrictModel):
    """What is served, on what, under which traffic, and what counts as good. At least one run bound
    is needed (`duration_s`, `num_requests`, or a trace); with several, the first reached ends arrivals."""

    name: str = Field(
        ..., min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", description="Names the results folder."
    )
    description: str = Field("", description="Free text shown nowhere but in the results.")
    seed: int = Field(0, ge=0, description="Seeds arrivals and lengths; same seed, same results.")
    model: str | ModelArchitecture = Field(
        ...,
        description="Catalog name, inline architecture, or a local model directory or config.json (relative "
        "to this file).",
    )
    hardware: str | HardwareSpec = Field(..., description="Catalog name or inline datasheet.")
    engine: EngineSpec = Field(default_factory=EngineSpec, description="vLLM knobs (see engine).")
    workload: WorkloadSpec = Field(..., description="Request lengths and arrivals (see workload).")
    fleet: FleetSpec = Field(default_factory=FleetSpec, description="Replicas and routing (see fleet).")
    slo: SLOSpec = Field(default_factory=SLOSpec, description="What counts as a good request (see slo).")
    cost_model: CostModelSpec = Field(default_factory=RooflineCost, description="How step times are priced.")
    profile: FilePath | None = Field(
        "auto",
        description="A calibrate profile (path, relative to this file): measured step and compile times. "
        "'auto' (default): the shipped profile of this hardware, model, TP and precision in profiles/ when "
        "there is one, else the datasheet roofline; 'none': the datasheet roofline.",
    )
    duration_s: float | None = Field(
        None, gt=0, le=1e7, description="Stop sending requests after this time (at most 1e7 s, 116 days)."
    )
    num_requests: int | None = Field(None, ge=1, description="Stop after this many requests.")
    limits: LimitsSpec = Field(
        default_factory=LimitsSpec, description="Size bounds a run is refused past (see limits)."
    )
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
    pools: Variants = Field(
        default_factory=dict,
        description="name -> {dotted.key: value}: a fleet of several pools behind one router, each the "
        "scenario's replica settings under its overrides (hardware, profile, engine, fleet.replicas, "
        "fleet.tensor_parallel_size, fleet.usd_per_chip_hour, autoscaler, startup, ...); traffic, SLO and "
        "routing stay fleet-wide. Listed order is the spill-over order. Empty: one pool.",
    )
    disaggregation: DisaggregationSpec | None = Field(
        None, description="Prefill on one pool, decode on another, KV across a link (see disaggregation)."
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
        check_pools(self.pools)
        self._check_sizes()
        split = self.disaggregation
        if split is not None:
            missing = [p for p in (split.prefill_pool, split.decode_pool) if p not in self.pools]
            if missing:
                raise ValueError(f"disaggregation names {', '.join(missing)}, not a key of pools")
        if self.variants and self.sweep is not None:
            raise ValueError("a scenario has either variants or a sweep, not both")
        scaler = self.autoscaler
        if scaler is not None and not scaler.min_replicas <= self.fleet.replicas <= scaler.max_replicas:
            raise ValueError(
                f"fleet.replicas ({self.fleet.replicas}) must lie within autoscaler.min_replicas "
                f"({scaler.min_replicas}) and max_replicas ({scaler.max_replicas})"
            )
        return self

    def _check_sizes(self) -> None:
        """Refuse, before any run, a scenario whose expected size passes its limits."""
        limits = self.limits
        if self.num_requests is not None and self.num_requests > limits.max_requests:
            raise ValueError(
                f"num_requests {self.num_requests:,} exceeds limits.max_requests {limits.max_requests:,}"
            )
        arrivals = self.workload.arrivals
        if self.duration_s is not None and arrivals is not None and not arrivals.is_instant:
            peak = float(arrivals.rate) * max([1.0, *(s.multiplier for s in arrivals.spikes)])
            peak = max([peak, *(p.rate for p in arrivals.schedule)])
            expected = peak * self.duration_s
            if self.num_requests is None and expected > limits.max_requests:
                raise ValueError(
                    f"up to {expected:,.0f} requests (peak {peak:g}/s for {self.duration_s:g} s) exceed "
                    f"limits.max_requests {limits.max_requests:,}; lower the rate or duration, or raise the limit"
                )
        window = self.metrics.window_s
        if (
            window is not None
            and self.duration_s is not None
            and self.duration_s / window > limits.max_windows
        ):
            raise ValueError(
                f"metrics.window_s {window:g} over {self.duration_s:g} s is {self.duration_s / window:,.0f} "
                f"windows, over limits.max_windows {limits.max_windows:,}"
            )
        runs = max(1, len(self.variants)) * self.monte_carlo.runs
        if self.sweep is not None:
            runs = self.sweep.num_points
        if runs > limits.max_runs:
            raise ValueError(
                f"{runs:,} runs (variants x monte_carlo.runs) exceed limits.max_runs {limits.max_runs:,}"
            )
