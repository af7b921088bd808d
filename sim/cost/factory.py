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


def build_cost_model(resolved: ResolvedScenario):
    spec = resolved.scenario.cost_model
    if isinstance(spec, ConstantCost):
        return ConstantStepCost(spec.step_s)
    assert isinstance(spec, RooflineCost)
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
    )
