"""Autoscaler policies: which fleet metric the autoscaler watches and how it turns it into a replica count.

Each policy is one class in ``POLICIES`` (the registry the scenario's ``autoscaler.policy`` names). A
*sampled* policy reads a load metric summed over ready replicas every ``sample_s`` and recommends
ceil(windowed total / target) -- the Kubernetes HPA rule for per-pod targets ("Horizontal Pod Autoscaling",
algorithm details). The ``ttft`` policy instead watches first-token latencies as they happen and applies
HPA's ratio rule, ceil(ready x observed / target).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Protocol


class ReadyLoad(Protocol):
    """Load over the ready replicas, with the requests the router holds (load no replica has yet)."""

    @property
    def num_outstanding(self) -> int: ...  # waiting + running, router-held included

    @property
    def num_waiting(self) -> int: ...  # waiting in replica queues, router-held included

    @property
    def kv_usage(self) -> float: ...  # sum over ready replicas of the KV-cache share in use


class FleetView(Protocol):
    """What a policy may read of the fleet (sim/fleet/controller.py provides it)."""

    def ready_load(self) -> ReadyLoad: ...


class ScalingPolicy(ABC):
    """How one metric becomes a recommendation (before stabilisation, clamping and cooldowns)."""

    sampled: bool = True  # reads a fleet total every sample_s (False: watches first tokens instead)
    watches_ttft: bool = False  # needs every first-token latency as it happens

    def sample(self, fleet: FleetView) -> float:
        """The metric's fleet total now (sampled policies)."""
        raise NotImplementedError(f"{type(self).__name__} is not sampled")

    @abstractmethod
    def recommend(
        self, current: int, ready: int, observed: float | None, target: float, tolerance: float
    ) -> int:
        """Replicas recommended for an observed metric value (None: nothing observed yet)."""


class _PerReplicaTarget(ScalingPolicy):
    """HPA's rule for a per-replica target: ceil(total / target), unchanged within the tolerance."""

    def recommend(self, current, ready, observed, target, tolerance):
        if observed is None:
            return current
        per_replica = observed / max(ready, 1)
        if ready and abs(per_replica / target - 1.0) <= tolerance:
            return current
        return math.ceil(observed / target - 1e-9)


class TargetInflight(_PerReplicaTarget):
    """Waiting + running requests per replica (Knative/KServe concurrency target)."""

    def sample(self, fleet: FleetView) -> float:
        return float(fleet.ready_load().num_outstanding)


class QueueLength(_PerReplicaTarget):
    """Waiting requests per replica (HPA on vllm:num_requests_waiting)."""

    def sample(self, fleet: FleetView) -> float:
        return float(fleet.ready_load().num_waiting)


class KVUsage(_PerReplicaTarget):
    """KV-cache share in use per replica, 0-1 (HPA on vllm:kv_cache_usage_perc)."""

    def sample(self, fleet: FleetView) -> float:
        return float(fleet.ready_load().kv_usage)


class TTFTQuantile(ScalingPolicy):
    """An observed TTFT quantile, ms, against a target: HPA's ratio rule ceil(ready x observed / target)."""

    sampled = False
    watches_ttft = True

    def recommend(self, current, ready, observed, target, tolerance):
        if observed is None or ready == 0:
            return current
        ratio = observed / target
        if abs(ratio - 1.0) <= tolerance:
            return current
        return math.ceil(ready * ratio)


POLICIES: dict[str, type[ScalingPolicy]] = {
    "target_inflight": TargetInflight,
    "queue_length": QueueLength,
    "kv_usage": KVUsage,
    "ttft": TTFTQuantile,
}
