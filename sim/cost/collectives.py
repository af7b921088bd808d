"""Tensor-parallel all-reduce cost over the link the replica's chips share.

Each transformer layer all-reduces its attention output and its MLP output (two all-reduces of
tokens x hidden x bytes per layer). Without a measurement, an all-reduce is an alpha-beta ring over t
ranks: 2(t-1) hops, each moving 1/t of the message over one link: time = 2(t-1) x alpha + 2(t-1)/t x
message / link bandwidth, with the link's one-direction bandwidth from the hardware datasheet.

The link is chosen once per scenario (``resolve_link``) and carries everything the step costs and the
runtimes need of it: bandwidth, per-hop latency and the straggler jitter, each with its source. When the
scenario's profile holds a measured all-reduce of the same number of chips (`calibrate --method
collectives`, or the measured vLLM all-reduce tables that `--method kernel-tables` writes), the link prices
an all-reduce by those measurements, interpolated over message size, and takes their measured spread as
its jitter -- none when they give medians only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sim import catalog
from sim.errors import InputError
from sim.hardware import HardwareSpec
from sim.profile import CollectiveSection

# Faster links first: by default TP uses the best interconnect the chip has.
LINK_PREFERENCE = (
    "nvlink5",
    "nvlink4",
    "nvlink3",
    "ici_3d_torus",
    "ici_2d_torus",
    "pcie_gen6",
    "pcie_gen5",
    "pcie_gen4",
)


def ring_allreduce_s(message_bytes: float, ranks: int, link_bytes_s: float, hop_latency_s: float) -> float:
    """alpha-beta ring all-reduce: 2(t-1) hops, each moving message/t bytes over one link."""
    if ranks <= 1:
        return 0.0
    hops = 2 * (ranks - 1)
    return hops * hop_latency_s + hops / ranks * message_bytes / link_bytes_s


@dataclass(frozen=True)
class TPLink:
    """The interconnect a replica's tensor-parallel all-reduces run over."""

    name: str  # key of the hardware's links table, e.g. "nvlink4", "pcie_gen5"
    ranks: int  # chips in the TP group
    bandwidth_gbs: float  # one direction per chip, GB/s
    hop_latency_s: float  # alpha of the ring model, per hop
    jitter_sigma: float  # log-normal sigma of per-rank noise (a collective waits for its slowest rank)
    measured: tuple[tuple[int, float], ...] = ()  # (message bytes, seconds) of a measured all-reduce
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def bytes_per_s(self) -> float:
        return self.bandwidth_gbs * 1e9

    def allreduce_s(self, message_bytes: float) -> float:
        """One all-reduce of message_bytes over the group: measured where measured (log-log interpolation
        between sizes; flat below the smallest, proportional to size beyond the largest), else the ring."""
        if not self.measured:
            return ring_allreduce_s(message_bytes, self.ranks, self.bytes_per_s, self.hop_latency_s)
        smallest, largest = self.measured[0], self.measured[-1]
        if message_bytes >= largest[0]:
            return largest[1] * message_bytes / largest[0]
        if message_bytes <= smallest[0]:
            return smallest[1]
        sizes = np.log([b for b, _ in self.measured])
        times = np.log([t for _, t in self.measured])
        return float(np.exp(np.interp(math.log(message_bytes), sizes, times)))


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
    hw: HardwareSpec,
    tp: int,
    requested: str | None,
    jitter_sigma: float | None,
    measured: Sequence[CollectiveSection] = (),
) -> TPLink | None:
    """The link of a TP group (None without tensor parallelism): a measured all-reduce of tp chips from the
    profile when there is one, else the ring over the datasheet link; every number with its source."""
    if tp <= 1:
        return None
    chosen = choose_link(hw, requested)
    if chosen is None:
        raise InputError(
            f"{hw.name} lists no interconnect for tensor parallelism", "fleet.tensor_parallel_size"
        )
    name, gbs = chosen
    provenance = {"tp_link": f"{name} at {gbs} GB/s per direction (datasheet: {hw.source})"}
    section = next((m for m in measured if m.ranks == tp), None)
    points: tuple[tuple[int, float], ...] = ()
    if section is not None:
        p = section.provenance
        provenance["allreduce"] = (
            f"{section.backend} all-reduce of {tp} chips, {p.method} ({p.tool}) on {p.device_kind}, {p.date}: "
            f"{len(section.samples)} message sizes, interpolated"
        )
        hop = section.hop_latency_s
        points = tuple(sorted((s.message_bytes, s.seconds) for s in section.samples))
    else:
        entry = catalog.efficiency_defaults()["collective_hop_latency_s"]
        hop = float(entry["value"])
        provenance["collective_hop_latency_s"] = _label(entry)
    if jitter_sigma is not None:
        sigma = jitter_sigma
        provenance["collective_jitter_sigma"] = f"{sigma} (scenario)"
    elif section is not None and section.jitter_sigma is not None:
        sigma = section.jitter_sigma
        provenance["collective_jitter_sigma"] = f"{sigma} (measured spread of the all-reduce above)"
    else:
        sigma = 0.0
        provenance["collective_jitter_sigma"] = (
            "0: the measured all-reduce gives medians only, so no straggler tail is added"
            if section is not None
            else "0: no published or measured spread for this link (set fleet.collective_jitter_sigma for a "
            "what-if)"
        )
    return TPLink(name, tp, gbs, hop, sigma, points, provenance)
