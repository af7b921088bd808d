"""Routing policies: which of the routable replicas a new request goes to.

A policy sees only the replicas the router currently believes are up (a crashed replica stays in that list
until its failure is detected) and the request's session id (-1 when the workload has no sessions).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter

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


class Router(ABC):
    """Picks the replica a new request goes to."""

    @abstractmethod
    def choose(self, replicas: Sequence[Replica], query: RouteQuery) -> Replica:
        """One of `replicas` (never empty) for this request."""


class RoundRobinRouter(Router):
    """Replica 0, 1, ..., n-1, 0, ...: what a plain Kubernetes Service does."""

    def __init__(self) -> None:
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

    def __init__(self) -> None:
        self._fallback = LeastOutstandingRouter()

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


ROUTERS: dict[str, type[Router]] = {
    "round_robin": RoundRobinRouter,
    "least_outstanding": LeastOutstandingRouter,
    "least_kv": LeastKVRouter,
    "session_affinity": SessionAffinityRouter,
    "prefix_aware": PrefixAwareRouter,
}
