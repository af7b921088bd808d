"""Build the step-cost model a scenario asks for, recording where every parameter came from.

Two steps, so that a scenario is resolved once and its models built per run:
- ``resolve_cost`` (called by sim/resolve.py) turns the scenario's ``cost_model`` section and its profile
  into ``CostSettings``: every factor's value and source, the measured sections that will be used;
- ``build_step_model`` turns those settings into the model: a ``DeviceTimeModel`` that the CUDA or XLA
  runtime wraps, or -- for ``kind: constant`` -- a ``StepCostModel`` used as is (no runtime layer).

Kinds of cost model come from ``COST_MODELS``; each entry resolves and builds its own kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from sim import catalog
from sim.architecture import ModelArchitecture
from sim.cost.base import DeviceTimeModel, StepCostModel
from sim.cost.collectives import TPLink
from sim.cost.constant import ConstantStepCost
from sim.cost.profiled import ProfiledStepTime
from sim.cost.roofline import RooflineStepTime
from sim.cost.spec import ConstantCost, CostModelSpec, RooflineCost
from sim.errors import InputError
from sim.hardware import HardwareSpec
from sim.profile import KernelSection, Profile, StepSection


@dataclass(frozen=True)
class CostSettings:
    """A scenario's step-cost model, resolved: its kind, its factors and the measured sections it uses."""

    kind: str  # key of COST_MODELS
    factors: dict[str, float]  # factor name -> value in force
    provenance: dict[str, str] = field(default_factory=dict)  # factor or input -> where it came from
    steps: StepSection | None = None  # measured step times that replace the roofline's
    kernels: KernelSection | None = None  # measured attention kernel that replaces its attention term
    engine_overhead_s: float = 0.0  # host time per step added to a forward-pass-only profile

    @property
    def step_times(self) -> str:
        """Where the step times come from, in the short words every output shows beside its numbers."""
        if not self.uses_runtime:
            return "constant (scenario)"
        if self.steps is not None:
            return STEP_LABELS.get(self.steps.provenance.method, self.steps.provenance.method)
        return "datasheet roofline"

    @property
    def uses_runtime(self) -> bool:
        """Whether steps go through the CUDA/XLA runtime layer (a constant step time bypasses it)."""
        return COST_MODELS[self.kind].uses_runtime


@dataclass(frozen=True)
class CostInputs:
    """What resolving a cost model may look at."""

    model: ModelArchitecture
    hardware: HardwareSpec
    catalog_section: str  # the hardware kind's section of catalog/efficiency.yaml
    tp: int
    profile: Profile | None
    profile_path: str | None


class CostModelKind(ABC):
    uses_runtime: bool = True

    @abstractmethod
    def resolve(self, spec: CostModelSpec, inputs: CostInputs) -> CostSettings: ...

    @abstractmethod
    def build(
        self, settings: CostSettings, model: ModelArchitecture, hw: HardwareSpec, tp: int, link: TPLink | None
    ) -> DeviceTimeModel | StepCostModel: ...


def _entry_label(entry: dict) -> str:
    return f"{entry['value']} ({entry['provenance']}: {entry['source']})"


class ConstantKind(CostModelKind):
    uses_runtime = False

    def resolve(self, spec: CostModelSpec, inputs: CostInputs) -> CostSettings:
        assert isinstance(spec, ConstantCost)
        if inputs.profile_path is not None:
            raise InputError(
                "a constant step time and a measured profile exclude each other; drop one", "profile"
            )
        return CostSettings(
            "constant", {"step_s": spec.step_s}, {"step_s": f"{spec.step_s} s, given in the scenario"}
        )

    def build(self, settings, model, hw, tp, link) -> StepCostModel:
        return ConstantStepCost(settings.factors["step_s"])


# How a profile's steps were obtained: a short label for tables, and the words of the provenance
STEP_LABELS = {
    "measured": "measured",
    "kernel-tables": "kernel tables",
    "compiler-estimated": "compiler estimate",
}
STEP_ORIGINS = {
    "measured": "measured by calibrate",
    "kernel-tables": "composed by calibrate from measured kernel tables",
    "compiler-estimated": "estimated by the XLA compiler (calibrate)",
}


class RooflineKind(CostModelKind):
    """The datasheet roofline, or a measured profile's step fit in its place (the roofline then prices only
    steps beyond the measured range, scaled to the fit at its edge)."""

    def resolve(self, spec: CostModelSpec, inputs: CostInputs) -> CostSettings:
        assert isinstance(spec, RooflineCost)
        defaults = catalog.efficiency_defaults()[inputs.catalog_section]
        hw = inputs.hardware
        factors: dict[str, float] = {}
        provenance = {
            "peak_bf16_tflops": f"{hw.peak_bf16_tflops} (datasheet: {hw.source})",
            "memory_bandwidth_gbs": f"{hw.memory_bandwidth_gbs} (datasheet: {hw.source})",
            "architecture": inputs.model.source,
        }
        given = {
            "memory_bandwidth_utilization": spec.memory_bandwidth_utilization,
            "flops_utilization": spec.flops_utilization,
            "step_overhead_s": spec.step_overhead_s,
        }
        for name, user_value in given.items():
            if user_value is not None:
                factors[name] = float(user_value)
                provenance[name] = f"{user_value} (scenario)"
            else:
                factors[name] = float(defaults[name]["value"])
                provenance[name] = _entry_label(defaults[name])
        profile, path = inputs.profile, inputs.profile_path
        kernels = _attention_kernel(spec, inputs, provenance) if spec.attention == "kernel" else None
        if profile is None or profile.steps is None or spec.steps == "roofline":
            # no profile, a compile-only one, or the scenario keeps the roofline's steps: the runtime still
            # takes the profile's compile times
            if profile is not None and profile.steps is not None:
                provenance["step_times"] = (
                    "datasheet roofline (cost_model.steps: roofline; the profile's "
                    f"{STEP_LABELS.get(profile.steps.provenance.method, 'measured')} steps are not used)"
                )
            return CostSettings("roofline", factors, provenance, kernels=kernels)
        steps = profile.steps
        if steps.provenance.tool == "torch" or steps.provenance.method == "compiler-estimated":
            # a forward pass alone (torch) or the device's work alone (the XLA compiler's estimate): vLLM's
            # host work per step comes on top
            entry = defaults["engine_overhead_s"]
            if spec.step_overhead_s is not None:
                overhead, source = spec.step_overhead_s, "cost_model.step_overhead_s in the scenario"
            else:
                overhead, source = float(entry["value"]), f"{entry['provenance']}: {entry['source']}"
            provenance["engine_overhead_s"] = f"{overhead} per step ({source})"
        else:
            overhead = 0.0
            provenance["engine_overhead_s"] = "included in the measured steps"
        q, p = steps.fit.quality, steps.provenance
        origin = STEP_ORIGINS.get(p.method, f"{p.method} by calibrate")
        provenance["step_times"] = (
            f"fitted to {len(steps.samples)} steps {origin} ({p.tool}) on {p.device_kind}, {p.date}; "
            f"held-out R^2 {q.r2:.4f}, p95 error {q.p95_rel_residual:.1%} ({path})"
        )
        provenance["beyond_measured_range"] = "roofline scaled to the fit at the edge of the measured range"
        return CostSettings(
            "roofline", factors, provenance, steps=steps, kernels=kernels, engine_overhead_s=overhead
        )

    def build(self, settings, model, hw, tp, link) -> DeviceTimeModel:
        f = settings.factors
        roofline = RooflineStepTime(
            model,
            hw,
            tp=tp,
            link=link,
            memory_bandwidth_utilization=f["memory_bandwidth_utilization"],
            flops_utilization=f["flops_utilization"],
            step_overhead_s=f["step_overhead_s"],
            provenance=dict(settings.provenance),
            attention_kernel=settings.kernels,
        )
        if settings.steps is None:
            return roofline
        return ProfiledStepTime(
            settings.steps,
            roofline,
            engine_overhead_s=settings.engine_overhead_s,
            provenance=dict(settings.provenance),
        )


COST_MODELS: dict[str, CostModelKind] = {"roofline": RooflineKind(), "constant": ConstantKind()}


def check_profile_matches(
    profile: Profile,
    model: str,
    hardware: str | None,
    tp: int,
    path: str,
    weight_dtype: str = "bfloat16",
    kv_cache_dtype: str = "auto",
) -> None:
    """A profile measured for one model, host, TP or precision must not price another."""
    if profile.model != model:
        raise InputError(
            f"{path} was measured for model '{profile.model}', the scenario serves '{model}'", "profile"
        )
    if hardware is not None and profile.hardware != hardware:
        raise InputError(
            f"{path} was measured on '{profile.hardware}', the scenario runs on '{hardware}'", "profile"
        )
    compiled = profile.compile
    if compiled is not None:
        if compiled.fits_hbm is False:
            raise InputError(
                f"{path}: {profile.model} at TP{compiled.tensor_parallel_size} does not fit {profile.hardware}: "
                f"{compiled.fit_reason}",
                "profile",
            )
        if compiled.tensor_parallel_size != tp:
            raise InputError(
                f"{path} holds compile times of TP{compiled.tensor_parallel_size}; the scenario uses TP{tp}",
                "profile",
            )
    steps = profile.steps
    if steps is None:
        return
    if steps.tensor_parallel_size != tp:
        raise InputError(
            f"{path} holds TP{steps.tensor_parallel_size} step times; the scenario uses TP{tp}", "profile"
        )
    # Profiles that predate the precision knobs name the model dtype (bfloat16, float32): unquantized.
    measured = steps.dtype if steps.dtype in ("fp8", "nvfp4") else "bfloat16"
    if measured != weight_dtype:
        raise InputError(
            f"{path} holds {steps.dtype} step times; the scenario serves {weight_dtype} weights "
            "(engine.weight_dtype)",
            "profile",
        )
    if steps.kv_cache_dtype != kv_cache_dtype:
        raise InputError(
            f"{path} was timed with kv_cache_dtype {steps.kv_cache_dtype}; the scenario uses {kv_cache_dtype}",
            "profile",
        )


def resolve_cost(spec: CostModelSpec, inputs: CostInputs) -> CostSettings:
    return COST_MODELS[spec.kind].resolve(spec, inputs)


def build_step_model(
    settings: CostSettings, model: ModelArchitecture, hw: HardwareSpec, tp: int, link: TPLink | None
) -> DeviceTimeModel | StepCostModel:
    return COST_MODELS[settings.kind].build(settings, model, hw, tp, link)


def _attention_kernel(spec: RooflineCost, inputs: CostInputs, provenance: dict) -> KernelSection:
    """The profile's kernel section, for `cost_model.attention: kernel`."""
    profile = inputs.profile
    if profile is None or profile.kernels is None:
        raise InputError(
            "'kernel' prices attention with measured kernel times: the scenario needs a profile with a kernels "
            "section (calibrate --method kernels on a TPU host)",
            "cost_model.attention",
        )
    if profile.steps is not None:
        raise InputError(
            "this profile also holds measured engine steps, which already include attention; use "
            "attention: roofline with it, or a profile without steps",
            "cost_model.attention",
        )
    k = profile.kernels
    arch = inputs.model
    if k.head_dim != arch.head_dim or k.num_q_heads * k.tensor_parallel_size != arch.num_attention_heads:
        raise InputError(
            f"the profile's kernel was timed for {k.num_q_heads} q heads x {k.head_dim} per chip at TP"
            f"{k.tensor_parallel_size}; the model has {arch.num_attention_heads} heads x {arch.head_dim}",
            "cost_model.attention",
        )
    p, q = k.provenance, k.fit.quality
    provenance["attention"] = (
        f"{k.implementation} timed by calibrate ({p.tool}, {p.method}) on {p.device_kind}, {p.date}; "
        f"{len(k.samples)} shapes, held-out R^2 {q.r2:.4f}, p95 error {q.p95_rel_residual:.1%}; replaces the "
        "roofline's attention term"
    )
    return k
