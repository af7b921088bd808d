"""Capacity and cost of a run: one definition of each, used by summary.json, studies and plan.

- replica_hours / chip_hours: capacity held, launch to stop (cold starts included), x chips per replica;
- cost_usd = chip_hours x price per chip-hour;
- usd_per_1m_good_requests = cost_usd / good requests x 1e6 (null when no request was good).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CapacityCost:
    replica_hours: float
    chip_hours: float
    cost_usd: float | None  # None without a price
    usd_per_1m_good_requests: float | None  # None without a price or without a good request

    def as_dict(self) -> dict[str, float | None]:
        return {
            "replica_hours": self.replica_hours,
            "chip_hours": self.chip_hours,
            "cost_usd": self.cost_usd,
            "usd_per_1m_good_requests": self.usd_per_1m_good_requests,
        }


def capacity_cost(
    replica_seconds: float, chips_per_replica: int, usd_per_chip_hour: float | None, good_requests: int
) -> CapacityCost:
    replica_hours = replica_seconds / 3600.0
    chip_hours = replica_hours * chips_per_replica
    if usd_per_chip_hour is None:
        return CapacityCost(replica_hours, chip_hours, None, None)
    cost = chip_hours * usd_per_chip_hour
    per_million = cost / good_requests * 1e6 if good_requests else None
    return CapacityCost(replica_hours, chip_hours, cost, per_million)


def fleet_cost(
    fleet_log: dict, chips_per_replica: int, usd_per_chip_hour: float | None, good_requests: int
) -> CapacityCost:
    """The capacity a run held and its cost: one pool at the scenario's price, or -- when the fleet log
    lists pools -- each pool's replica-seconds at its own chips per replica and price (no cost when any
    pool has no price)."""
    pools = fleet_log.get("pools")
    if not pools:
        return capacity_cost(
            fleet_log["replica_seconds"], chips_per_replica, usd_per_chip_hour, good_requests
        )
    parts = [
        capacity_cost(p["replica_seconds"], p["chips_per_replica"], p["usd_per_chip_hour"], good_requests)
        for p in pools
    ]
    replica_hours = sum(c.replica_hours for c in parts)
    chip_hours = sum(c.chip_hours for c in parts)
    if any(c.cost_usd is None for c in parts):
        return CapacityCost(replica_hours, chip_hours, None, None)
    cost = sum(c.cost_usd or 0.0 for c in parts)
    per_million = cost / good_requests * 1e6 if good_requests else None
    return CapacityCost(replica_hours, chip_hours, cost, per_million)
