"""Build the step-cost model a scenario asks for, recording where every parameter came from."""

from __future__ import annotations

from sim import catalog
from sim.cost.collectives import choose_link
from sim.cost.constant import ConstantStepCost
from sim.cost.roofline import RooflineStepCost
from sim.errors import InputError
from sim.resolve import ResolvedScenario
from sim.scenario import ConstantCost, RooflineCost


def _factor(name: str, user_value: float | None, defaults: dict, provenance: dict) -> float:
    if user_value is not None:
        provenance[name] = f"{user_value} (scenario)"
        return user_value
    entry = defaults[name]
    provenance[name] = f"{entry['value']} ({entry['provenance']}: {entry['source']})"
    return float(entry["value"])


def check_profile_matches(profile, resolved: ResolvedScenario, path: str) -> None:
    """A profile measured for one model or host must not price another."""
    sc = resolved.scenario
    hardware = sc.hardware if isinstance(sc.hardware, str) else None
    if profile.model != resolved.model.name:
        raise InputError(
            f"{path} was measured for model '{profile.model}', the scenario serves '{resolved.model.name}'",
            "profile",
        )
    if hardware is not None and profile.hardware != hardware:
        raise InputError(
            f"{path} was measured on '{profile.hardware}', the scenario runs on '{hardware}'", "profile"
        )
    if profile.steps is not None and profile.steps.tensor_parallel_size != resolved.tp:
        raise InputError(
            f"{path} holds TP{profile.steps.tensor_parallel_size} step times; the scenario uses "
            f"TP{resolved.tp}",
            "profile",
        )


def build_cost_model(resolved: ResolvedScenario):
    spec = resolved.scenario.cost_model
    if isinstance(spec, ConstantCost):
        if resolved.scenario.profile is not None:
            raise InputError(
                "a constant step time and a measured profile exclude each other; drop one", "profile"
            )
        return ConstantStepCost(spec.step_s)
    roofline = _build_roofline(resolved, spec)
    path = resolved.scenario.profile
    if path is None:
        return roofline
    from sim.cost.profiled import ProfiledStepCost

    profile = resolved.profile
    check_profile_matches(profile, resolved, path)
    if profile.steps is None:
        return roofline  # a compile-only profile (e.g. TPU AOT): the runtime takes its compile times
    entry = catalog.efficiency_defaults()[resolved.hardware.kind]["engine_overhead_s"]
    if getattr(spec, "step_overhead_s", None) is not None:
        overhead, source = spec.step_overhead_s, "cost_model.step_overhead_s in the scenario"
    else:
        overhead, source = float(entry["value"]), f"{entry['provenance']}: {entry['source']}"
    return ProfiledStepCost(profile, roofline, path, overhead, source)


def _build_roofline(resolved: ResolvedScenario, spec: RooflineCost):
    table = catalog.efficiency_defaults()
    defaults = table[resolved.hardware.kind]
    provenance: dict[str, str] = {
        "peak_bf16_tflops": f"{resolved.hardware.peak_bf16_tflops} (datasheet: {resolved.hardware.source})",
        "memory_bandwidth_gbs": f"{resolved.hardware.memory_bandwidth_gbs} (datasheet: {resolved.hardware.source})",
        "architecture": resolved.model.source,
    }
    hop = table["collective_hop_latency_s"]
    link = None
    if resolved.tp > 1:
        provenance["collective_hop_latency_s"] = f"{hop['value']} ({hop['provenance']}: {hop['source']})"
        link = choose_link(resolved.hardware, resolved.scenario.fleet.interconnect)
        if link is None:
            raise InputError(
                f"{resolved.hardware.name} lists no interconnect for tensor parallelism",
                "fleet.tensor_parallel_size",
            )
        provenance["tp_link"] = (
            f"{link[0]} at {link[1]} GB/s per direction (datasheet: {resolved.hardware.source})"
        )
    kernel = None
    if spec.attention == "kernel":
        kernel = _attention_kernel(resolved, provenance)
    return RooflineStepCost(
        resolved.model,
        resolved.hardware,
        tp=resolved.tp,
        link=link,
        memory_bandwidth_utilization=_factor(
            "memory_bandwidth_utilization", spec.memory_bandwidth_utilization, defaults, provenance
        ),
        flops_utilization=_factor("flops_utilization", spec.flops_utilization, defaults, provenance),
        step_overhead_s=_factor("step_overhead_s", spec.step_overhead_s, defaults, provenance),
        collective_hop_latency_s=float(hop["value"]),
        provenance=provenance,
        attention_kernel=kernel,
    )


def _attention_kernel(resolved: ResolvedScenario, provenance: dict):
    """The profile's kernel section, for `cost_model.attention: kernel`."""
    profile = resolved.profile
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
    arch = resolved.model
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
