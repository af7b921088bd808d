"""A replica's time to ready, as the sum of its parts.

  provision (machine or slice) + container and vLLM process start + weight load (bytes / storage bandwidth)
  + the runtime's own start:
      cuda: engine init + torch.compile (cold, or loaded from its cache) + CUDA-graph capture (per size)
      xla:  precompile of every bucket combination (cold, or from the persistent XLA cache) / workers
Each part says where its number came from. The first request's latency on a fresh replica adds its
prefill step, including any compile that the precompile did not cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim import catalog
from sim.cost.base import StepBatch
from sim.resolve import ResolvedScenario
from sim.runtime.settings import RuntimeSettings


def _label(entry: dict) -> str:
    return f"{entry['provenance']}: {entry['source']}"


@dataclass(frozen=True)
class StartupBreakdown:
    runtime: str
    cache: str  # "cold" or "warm": the runtime's compile cache at start
    components: dict[str, float]  # part -> seconds, in start order
    provenance: dict[str, str] = field(default_factory=dict)  # part -> where its number came from
    first_request_s: float = 0.0  # a first request's prefill step on the fresh replica, compiles included

    @property
    def total_s(self) -> float:
        return sum(self.components.values())


def _measured_launch(resolved: ResolvedScenario, cache: str):
    if resolved.profile is None:
        return None
    return next((m for m in resolved.profile.startup if m.cache == cache), None)


def first_request_s(settings: RuntimeSettings, base, prompt_tokens: int, cache: str) -> float:
    """Latency of one request's prefill on a replica that has just become ready."""
    fresh = settings.build(base, replica_id=2**31 - 1, seed=0, cache=cache)  # a probe, not a fleet member
    return fresh.step_cost(StepBatch(0, 0, (prompt_tokens,), (prompt_tokens,), 1)).seconds


def provision(resolved: ResolvedScenario) -> tuple[float, str]:
    """Seconds to acquire a new machine or slice, and where the number came from."""
    spec = resolved.scenario.startup
    if spec.provision_s is not None:
        return spec.provision_s, "scenario (startup.provision_s)"
    entry = catalog.runtime_defaults()["startup"]["provision_s"][resolved.hardware.kind]
    return entry["value"], _label(entry)


def startup_breakdown(
    resolved: ResolvedScenario,
    settings: RuntimeSettings | None,
    cache: str,
    *,
    base=None,
    prompt_tokens: int = 0,
) -> StartupBreakdown:
    """settings None: a constant step cost, which has no runtime layer and so no runtime start-up part."""
    spec = resolved.scenario.startup
    measured = _measured_launch(resolved, cache)
    provision_s, provision_source = provision(resolved)
    name = settings.name if settings is not None else "constant"
    if measured is not None:
        # A real launch measured by `validate startup` covers container start, weight load and the runtime's
        # own start together; only provisioning is added.
        parts = {"provision": provision_s, "measured_launch_to_ready": measured.time_to_ready_s}
        p = measured.provenance
        prov = {
            "provision": provision_source,
            "measured_launch_to_ready": f"measured by validate startup on {p.host}, {p.date}: "
            f"{measured.launch_cmd} ({cache} cache)",
        }
        first = (
            first_request_s(settings, base, prompt_tokens, cache)
            if settings is not None and base is not None and prompt_tokens
            else 0.0
        )
        return StartupBreakdown(name, cache, parts, prov, first)
    defaults = catalog.runtime_defaults()["startup"]
    parts: dict[str, float] = {"provision": provision_s}
    prov = {"provision": provision_source}
    if spec.container_start_s is not None:
        parts["container_start"], prov["container_start"] = spec.container_start_s, "scenario"
    else:
        parts["container_start"] = defaults["container_start_s"]["value"]
        prov["container_start"] = _label(defaults["container_start_s"])
    bandwidth = spec.storage_bandwidth_gbs or defaults["storage_bandwidth_gbs"]["value"]
    parts["weight_load"] = resolved.model.weight_bytes / (bandwidth * 1e9)
    prov["weight_load"] = (
        f"{resolved.model.weight_bytes / 1e9:.1f} GB at {bandwidth} GB/s ("
        + ("scenario" if spec.storage_bandwidth_gbs else _label(defaults["storage_bandwidth_gbs"]))
        + ")"
    )
    if settings is not None:
        runtime_parts, runtime_prov = settings.startup_parts(cache)
        parts.update(runtime_parts)
        prov.update(runtime_prov)
    first = (
        first_request_s(settings, base, prompt_tokens, cache)
        if settings is not None and base is not None and prompt_tokens
        else 0.0
    )
    return StartupBreakdown(name, cache, parts, prov, first)
