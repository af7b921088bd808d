"""Tensor-parallel all-reduce cost: an alpha-beta ring over the link the replica's chips share.

Each transformer layer all-reduces its attention output and its MLP output (two all-reduces of
tokens x hidden x bytes per layer). A ring all-reduce over t ranks takes 2(t-1) hops, each moving 1/t of
the message over one link: time = 2(t-1) x alpha + 2(t-1)/t x message / link bandwidth. Link bandwidths
are one direction per chip from the hardware datasheet table (a ring streams one way per channel).
"""

from __future__ import annotations

from sim.errors import InputError
from sim.hardware import HardwareSpec

# Faster links first: by default TP uses the best interconnect the chip has.
LINK_PREFERENCE = ("nvlink4", "nvlink3", "ici_3d_torus", "ici_2d_torus", "pcie_gen5", "pcie_gen4")


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
        name = max(hw.links, key=hw.links.get)
        return name, hw.links[name]
    return None
