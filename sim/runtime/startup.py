"""A replica's time to ready, as the sum of its parts.

  provision (machine or slice) + container and vLLM process start + weight load (bytes / storage bandwidth)
  + the runtime's own start:
      cuda: engine init + torch.compile (cold, or loaded from its cache) + CUDA-graph capture (per size)
      xla:  precompile of every bucket combination (cold, or from the persistent XLA cache) / workers
Each part says where its number came from. The first request's latency on a fresh replica adds its
prefill step, including any compile that the precompile did not cover.

``resolve_startup`` (called by sim/resolve.py) fixes the parts that do not depend on the runtime; the
breakdown adds the runtime's share for a cold or warm compile cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim import catalog
from sim.cost.base import DeviceTimeModel, StepBatch
from sim.profile import StartupMeasurement
from sim.runtime.settings import RuntimeSettings
from sim.runtime.spec import StartupSpec


def _label(entry: dict) -> str:
    return f"{entry['provenance']}: {entry['source']}"


@dataclass(frozen=True)
class StartupPlan:
    """The runtime-independent parts of a replica's start-up, resolved."""

    provision_s: float  # acquiring a new machine or slice
    container_start_s: float
    weight_load_s: float
    measured: dict[str, StartupMeasurement]  # cache state -> a measured launch of a real server
    stockout_probability: float
    stockout_retry_s: float
    provenance: dict[str, str] = field(default_factory=dict)


def resolve_startup(
    spec: StartupSpec, catalog_section: str, weight_bytes: int, measured: list[StartupMeasurement]
) -> StartupPlan:
    defaults = catalog.runtime_defaults()["startup"]
    prov: dict[str, str] = {}
    if spec.provision_s is not None:
        provision, prov["provision"] = spec.provision_s, "scenario (startup.provision_s)"
    else:
        entry = defaults["provision_s"][catalog_section]
        provision, prov["provision"] = entry["value"], _label(entry)
    if spec.container_start_s is not None:
        container, prov["container_start"] = spec.container_start_s, "scenario"
    else:
        container = defaults["container_start_s"]["value"]
        prov["container_start"] = _label(defaults["container_start_s"])
    bandwidth = spec.storage_bandwidth_gbs or defaults["storage_bandwidth_gbs"]["value"]
    prov["weight_load"] = (
        f"{weight_bytes / 1e9:.1f} GB at {bandwidth} GB/s ("
        + ("scenario" if spec.storage_bandwidth_gbs else _label(defaults["storage_bandwidth_gbs"]))
        + ")"
    )
    return StartupPlan(
        provision_s=provision,
        container_start_s=container,
        weight_load_s=weight_bytes / (bandwidth * 1e9),
        measured={m.cache: m for m in reversed(measured)},  # the first measurement of each state wins
        stockout_probability=spec.stockout_probability,
        stockout_retry_s=spec.stockout_retry_s,
        provenance=prov,
    )


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


def first_request_s(
    settings: RuntimeSettings, device: DeviceTimeModel, prompt_tokens: int, cache: str
) -> float:
    """Latency of one request's prefill on a replica that has just become ready."""
    fresh = settings.build(device, replica_id=2**31 - 1, seed=0, cache=cache)  # a probe, not a fleet member
    return fresh.step_cost(StepBatch(0, 0, (prompt_tokens,), (prompt_tokens,), 1)).seconds


def startup_breakdown(
    plan: StartupPlan,
    settings: RuntimeSettings | None,
    cache: str,
    *,
    device: DeviceTimeModel | None = None,
    prompt_tokens: int = 0,
) -> StartupBreakdown:
    """settings None: a constant step cost, which has no runtime layer and so no runtime start-up part."""
    name = settings.name if settings is not None else "constant"
    first = (
        first_request_s(settings, device, prompt_tokens, cache)
        if settings is not None and device is not None and prompt_tokens
        else 0.0
    )
    measured = plan.measured.get(cache)
    if measured is not None:
        # A real launch measured by `validate startup` covers container start, weight load and the runtime's
        # own start together; only provisioning is added.
        p = measured.provenance
        parts = {"provision": plan.provision_s, "measured_launch_to_ready": measured.time_to_ready_s}
        prov = {
            "provision": plan.provenance["provision"],
            "measured_launch_to_ready": f"measured by validate startup on {p.host}, {p.date}: "
            f"{measured.launch_cmd} ({cache} cache)",
        }
        return StartupBreakdown(name, cache, parts, prov, first)
    parts = {
        "provision": plan.provision_s,
        "container_start": plan.container_start_s,
        "weight_load": plan.weight_load_s,
    }
    prov = {k: plan.provenance[k] for k in ("provision", "container_start", "weight_load")}
    if settings is not None:
        runtime_parts, runtime_prov = settings.startup_parts(cache)
        parts.update(runtime_parts)
        prov.update(runtime_prov)
    return StartupBreakdown(name, cache, parts, prov, first)
