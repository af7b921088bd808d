"""Routing policies: which of the routable replicas a new request goes to.

A policy sees only the replicas the router currently believes are up (a crashed replica stays in that list
until its failure is detected) and the request's session id (-1 when the workload has no sessions). In a
fleet of several pools (sim/fleet/pool.py) every replica names its pool; the pool-aware policies (weighted,
cheapest_first, spill_over) choose a pool first, then the least busy replica in it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter

from sim.fleet.pool import PoolInfo
from sim.replica.replica import Replica

_OUTSTANDING = attrgetter(
    "outstanding"
)  # waiting + running, kept by the replica (see Replica.num_outstanding)


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """What a router may know of a request: its session (-1: none) and its full blocks' hashes (None: the
    workload has no token identity, or prefix caching is off)."""

    session: int
    block_hashes: list[int] | None = None
    prompt_tokens: int = 0  # tokens the request brings to compute (for a predicted TTFT)


class Router(ABC):
    """Picks the replica a new request goes to. pools: the fleet's pools, by index (replica.pool)."""

    def __init__(self, pools: Sequence[PoolInfo] = ()) -> None:
        self.pools = list(pools)

    @abstractmethod
    def choose(self, replicas: Sequence[Replica], query: RouteQuery) -> Replica:
        """One of `replicas` (never empty) for this request."""


class RoundRobinRouter(Router):
    """Replica 0, 1, ..., n-1, 0, ...: what a plain Kubernetes Service does."""

    def __init__(self, pools: Sequence[PoolInfo] = ()) -> None:
        super().__init__(pools)
        self._next = 0

    def choose(self, replicas: Sequence[Replica], query: RouteQuery) -> Replica:
        replica = replicas[self._next % len(replicas)]
        self._next += 1
        return replica


class LeastOutstandingRouter(Router):
    """The replica with the fewest waiting + running requests; ties go to the lowest index."""

    def choose(self, replicas: Sequence[Replica], query: RouteQuery) -> Replica:
        return min(replicas, key=_OUTSTANDING)


class LeastKVRouter(Router):
    """The replica with the lowest KV-cache use (ties: fewest outstanding, then lowest index) -- what an
    endpoint picker reading vllm:kv_cache_usage_perc does."""

    def choose(self, replicas: Sequence[Replica], query: RouteQuery) -> Replica:
        return min(replicas, key=lambda r: (r.kv_usage, r.outstanding))


def _mix(x: int) -> int:
    """splitmix64's finaliser: a fixed, well-spread 64-bit hash (Python's hash() is salted per process)."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


class SessionAffinityRouter(Router):
    """Rendezvous hashing of (session, replica): a session keeps its replica while that replica is up, and
    when one leaves only its sessions move. Requests without a session fall back to least outstanding."""

    def __init__(self, pools: Sequence[PoolInfo] = ()) -> None:
        super().__init__(pools)
        self._fallback = LeastOutstandingRouter(pools)

    def choose(self, replicas: Sequence[Replica], query: RouteQuery) -> Replica:
        if query.session < 0:
            return self._fallback.choose(replicas, query)
        return max(replicas, key=lambda r: _mix((query.session << 20) ^ r.replica_id))


class PrefixAwareRouter(Router):
    """The replica whose prefix cache holds the longest prefix of the request, among those not busier than
    the least busy one by more than LOAD_SLACK outstanding requests (ties: fewest outstanding, then lowest
    index) -- the way a prefix-aware endpoint picker (llm-d's prefix-cache scorer with a load scorer)
    trades cache hits against balance. Without block hashes it is least outstanding."""

    LOAD_SLACK = 8  # a choice, not a published figure: extra queued requests a cache hit may justify

    def choose(self, replicas: Sequence[Replica], query: RouteQuery) -> Replica:
        least = min(r.outstanding for r in replicas)
        eligible = [r for r in replicas if r.outstanding <= least + self.LOAD_SLACK]
        hashes = query.block_hashes
        if not hashes:
            return min(eligible, key=_OUTSTANDING)
        return max(eligible, key=lambda r: (r.cached_prefix_blocks(hashes), -r.outstanding))


def _least_busy_by_pool(replicas: Sequence[Replica]) -> dict[int, Replica]:
    """pool index -> its routable replica with the fewest outstanding requests (ties: lowest index)."""
    best: dict[int, Replica] = {}
    for r in replicas:
        held = best.get(r.pool)
        if held is None or r.outstanding < held.outstanding:
            best[r.pool] = r
    return best


class WeightedPoolRouter(Router):
    """Pools in proportion to their `fleet.pool_weight` (smooth weighted round robin, as nginx balances
    weighted upstreams: deterministic, and no pool waits long for its turn), then the least busy replica of
    the chosen pool. A pool with no routable replica drops out of the rotation until it has one."""

    def __init__(self, pools: Sequence[PoolInfo] = ()) -> None:
        super().__init__(pools)
        self._credit = [0.0] * len(self.pools)

    def choose(self, replicas: Sequence[Replica], query: RouteQuery) -> Replica:
        best = _least_busy_by_pool(replicas)
        if len(best) == 1:
            return next(iter(best.values()))
        total = 0.0
        for p in best:
            weight = self.pools[p].weight
            self._credit[p] += weight
            total += weight
        chosen = max(best, key=lambda p: (self._credit[p], -p))
        self._credit[chosen] -= total
        return best[chosen]


class CheapestFirstRouter(Router):
    """The cheapest pool (price per replica-hour; unpriced pools last) whose least busy replica has headroom:
    nothing waiting and fewer running than its max_num_seqs, so the request would start at once; when no
    pool has, the replica with the lowest outstanding / max_num_seqs anywhere. Cost-aware: steady load stays
    on the cheap pool, what it would queue spills to the next cheapest."""

    def choose(self, replicas: Sequence[Replica], query: RouteQuery) -> Replica:
        pools = self.pools
        best = _least_busy_by_pool(replicas)
        for p in sorted(best, key=lambda p: (pools[p].usd_per_replica_hour, p)):
            r = best[p]
            if r.scheduler.num_waiting == 0 and r.outstanding < pools[p].max_num_seqs:
                return r
        return min(best.values(), key=lambda r: (r.outstanding / pools[r.pool].max_num_seqs, r.pool))


class SpillOverRouter(Router):
    """Pools in the scenario's order: a request goes to the first pool whose least busy replica has at most
    its `fleet.spill_waiting` requests waiting (queued, not yet running) -- or, with `fleet.spill_ttft_ms`,
    whose predicted TTFT there is within it: the prompt tokens queued ahead plus its own, over the pool's
    prefill rate at a full token budget. When every pool is past its bound, the replica with the fewest
    waiting. The first pool is the base, the rest absorb what it would queue."""

    def choose(self, replicas: Sequence[Replica], query: RouteQuery) -> Replica:
        best = _least_busy_by_pool(replicas)
        for p in sorted(best):
            pool, replica = self.pools[p], best[p]
            if pool.spill_ttft_s is not None:
                pending = replica.scheduler.pending_prefill_tokens + query.prompt_tokens
                if pool.predicted_ttft_s(pending) <= pool.spill_ttft_s:
                    return replica
            elif replica.scheduler.num_waiting <= pool.spill_waiting:
                return replica
        return min(best.values(), key=lambda r: (r.scheduler.num_waiting, r.pool))


ROUTERS: dict[str, type[Router]] = {
    "round_robin": RoundRobinRouter,
    "least_outstanding": LeastOutstandingRouter,
    "least_kv": LeastKVRouter,
    "session_affinity": SessionAffinityRouter,
    "prefix_aware": PrefixAwareRouter,
    "weighted": WeightedPoolRouter,
    "cheapest_first": CheapestFirstRouter,
    "spill_over": SpillOverRouter,
}
