"""What the fleet knows of a pool: a group of identical replicas (one hardware, one engine configuration)
behind the fleet's router. A plain scenario is one pool; a scenario with `pools` has several, which
pool-aware routers (sim/fleet/router.py) choose between."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolInfo:
    name: str
    index: int  # position in the scenario's pools: the order spill-over tries them in
    hardware: str
    chips_per_replica: int
    usd_per_chip_hour: float | None  # None: no price given
    max_num_seqs: int  # requests one replica runs at once: a replica below it has headroom
    weight: float = 1.0  # share of requests the weighted router sends here (fleet.pool_weight)
    spill_waiting: int = 0  # the spill_over router passes this pool by above this many waiting
    spill_ttft_s: float | None = None  # ... or, when set, above this predicted TTFT
    prefill_tokens_per_s: float = 0.0  # a replica's prefill rate at a full token budget (predicted TTFT)

    def predicted_ttft_s(self, pending_tokens: int) -> float:
        """How long a replica with `pending_tokens` prompt tokens to compute (this request's included) takes
        to reach the end of them, at the pool's full-budget prefill rate."""
        return pending_tokens / self.prefill_tokens_per_s if self.prefill_tokens_per_s else float("inf")

    @property
    def usd_per_replica_hour(self) -> float:
        """Price of one replica-hour; a pool without a price sorts last (never 'cheapest')."""
        if self.usd_per_chip_hour is None:
            return float("inf")
        return self.usd_per_chip_hour * self.chips_per_replica
