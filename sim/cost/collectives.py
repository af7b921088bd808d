"""Tensor-parallel all-reduce cost: an alpha-beta ring over the link the replica's chips share.

Each transformer layer all-reduces its attention output and its MLP output (two all-reduces of
tokens x hidden x bytes per layer). A ring all-reduce over t ranks takes 2(t-1) hops, each moving 1/t of
the message over one link: time = 2(t-1) x alpha + 2(t-1)/t x message / link bandwidth. Link bandwidths
are one direction per chip from the hardware datasheet table (a ring streams one way per channel).

The link is chosen once per scenario (``resolve_link``) and carries everything the step costs and the
runtimes need of it: bandwidth, per-hop latency and the straggler jitter of its kind, each with its source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim import catalog
from sim.errors import InputError
from sim.hardware import HardwareSpec

# Faster links first: by default TP uses the best interconnect the chip has.
LINK_PREFERENCE = ("nvlink4", "nvlink3", "ici_3d_torus", "ici_2d_torus", "pcie_gen5", "pcie_gen4")


@dataclass(frozen=True)
class TPLink:
    """The interconnect a replica's tensor-parallel all-reduces run over."""

    name: str  # key of the hardware's links table, e.g. "nvlink4", "pcie_gen5"
    bandwidth_gbs: float  # one direction per chip, GB/s
    hop_latency_s: float  # alpha of the ring model, per hop
    jitter_sigma: float  # log-normal sigma of per-rank noise (a collective waits for its slowest rank)
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def bytes_per_s(self) -> float:
        return self.bandwidth_gbs * 1e9


def ring_allreduce_s(message_bytes: float, ranks: int, link_bytes_s: float, hop_latency_s: float) -> float:
    """alpha-beta ring all-reduce: 2(t-1) hops, each moving message/t bytes over one link."""
    if ranks <= 1:
        return 0.0
    hops = 2 * (ranks - 1)
    return hops * hop_latency_s + hops / ranks * message_bytes / link_bytes_s


def choose_link(hw: HardwareSpec, requested: str | None) -> tuple[str, float] | None:
    """(name, GB/s one direction) of the link TP uses: the requested one, else the fastest listed."""
    if requested is not None:
        if requested not in hw.links:
            known = ", ".join(sorted(hw.links)) or "none"
            raise InputError(f"{hw.name} has no '{requested}' link (it has: {known})", "fleet.interconnect")
        return requested, hw.links[requested]
    for name in LINK_PREFERENCE:
        if name in hw.links:
            return name, hw.links[name]
    if hw.links:
        name = max(hw.links, key=lambda key: hw.links[key])
        return name, hw.links[name]
    return None


def _label(entry: dict) -> str:
    return f"{entry['value']} ({entry['provenance']}: {entry['source']})"


def resolve_link(
    hw: HardwareSpec, tp: int, requested: str | None, jitter_sigma: float | None
) -> TPLink | None:
    """The link of a TP group (None without tensor parallelism), its latency and jitter defaults cited."""
    if tp <= 1:
        return None
    chosen = choose_link(hw, requested)
    if chosen is None:
        raise InputError(
            f"{hw.name} lists no interconnect for tensor parallelism", "fleet.tensor_parallel_size"
        )
    name, gbs = chosen
    hop = catalog.efficiency_defaults()["collective_hop_latency_s"]
    sigmas = catalog.runtime_defaults()["collective_jitter_sigma"]
    provenance = {
        "tp_link": f"{name} at {gbs} GB/s per direction (datasheet: {hw.source})",
        "collective_hop_latency_s": _label(hop),
    }
    if jitter_sigma is not None:
        sigma = jitter_sigma
        provenance["collective_jitter_sigma"] = f"{sigma} (scenario)"
    elif name in sigmas:
        sigma = float(sigmas[name]["value"])
        provenance["collective_jitter_sigma"] = f"{name}: {_label(sigmas[name])}"
    else:
        sigma = 0.0
        provenance["collective_jitter_sigma"] = f"0 (no default for {name})"
    return TPLink(name, gbs, float(hop["value"]), sigma, provenance)
