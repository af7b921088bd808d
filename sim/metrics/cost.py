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
