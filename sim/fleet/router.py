"""Routing policies: which replica a new request goes to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sim.replica.replica import Replica


class Router(Protocol):
    def choose(self, replicas: Sequence[Replica]) -> Replica: ...


class RoundRobinRouter:
    """Replica 0, 1, ..., n-1, 0, ...: what a plain Kubernetes Service does."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, replicas: Sequence[Replica]) -> Replica:
        replica = replicas[self._next % len(replicas)]
        self._next += 1
        return replica


class LeastOutstandingRouter:
    """The replica with the fewest waiting + running requests; ties go to the lowest index."""

    def choose(self, replicas: Sequence[Replica]) -> Replica:
        return min(replicas, key=lambda r: r.num_outstanding)


ROUTERS = {"round_robin": RoundRobinRouter, "least_outstanding": LeastOutstandingRouter}


def make_router(policy: str) -> Router:
    return ROUTERS[policy]()
