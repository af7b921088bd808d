"""The autoscaler: a SimPy process that watches one fleet metric and sets the fleet's target replica count.

It follows the Kubernetes HPA algorithm (docs: "Horizontal Pod Autoscaling"), with Knative-style metric
averaging:
  1. every sample_s, record the metric's fleet total over READY replicas (requests held by the router count
     as waiting and in flight: they are load no replica has yet);
  2. every interval_s, average the samples of the last metric_window_s and recommend
        ceil(total / target)                     for per-replica targets (in flight, waiting, KV use),
        ceil(ready x observed / target)          for ttft (the HPA ratio rule on a latency),
     unchanged while the per-replica value is within `tolerance` of the target;
  3. stabilise: scale up to the lowest recommendation of the last scale_up_stabilization_s, down to the
     highest of the last scale_down_stabilization_s; clamp to [min, max]; at most max_scale_up_step more
     (default HPA's max(double, +4)); respect cooldowns.
The controller (sim/fleet/fleet.py) then launches or drains replicas; a new replica serves only after its
cold start, which is the whole point: the metric keeps rising while replicas start.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import simpy

from sim.fleet.fleet import Fleet
from sim.replica.replica import ReplicaState
from sim.scenario_dynamics import AutoscalerSpec


class Autoscaler:
    def __init__(self, env: simpy.Environment, spec: AutoscalerSpec, fleet: Fleet):
        self.env, self.spec, self.fleet = env, spec, fleet
        self.samples: deque[tuple[float, float]] = deque()  # (time, fleet total of the metric)
        self.recommendations: deque[tuple[float, int]] = deque()  # (time, recommended replicas)
        self.last_up_s = -math.inf
        self.last_down_s = -math.inf
        self.decisions: list[dict] = []  # one row per decision, for the report
        self.next_sample_s = self.next_decision_s = 0.0  # when it next reads the fleet
        if spec.policy != "ttft":
            env.process(self._sample())
        env.process(self._decide())

    def next_read_s(self) -> float:
        """When it next reads or changes the fleet (for event skipping)."""
        if self.spec.policy == "ttft":
            return self.next_decision_s
        return min(self.next_sample_s, self.next_decision_s)

    # ---- metric -------------------------------------------------------------------------------------------
    def _ready(self):
        return [r for r in self.fleet.replicas if r.state == ReplicaState.READY]

    def metric_total(self) -> float:
        """The metric summed over ready replicas, router-held requests included where they count."""
        ready = self._ready()
        held = len(self.fleet.held)
        policy = self.spec.policy
        if policy == "target_inflight":
            return float(sum(r.num_outstanding for r in ready) + held)
        if policy == "queue_length":
            return float(sum(r.scheduler.num_waiting for r in ready) + held)
        return float(sum(r.kv_usage for r in ready))  # kv_usage

    def _sample(self):
        while True:
            self.samples.append((self.env.now, self.metric_total()))
            self.next_sample_s = self.env.now + self.spec.sample_s
            yield self.env.timeout(self.spec.sample_s)

    def _windowed(self) -> float | None:
        """The average of the samples in the metric window (None before the first)."""
        start = self.env.now - self.spec.metric_window_s
        while self.samples and self.samples[0][0] < start:
            self.samples.popleft()
        if not self.samples:
            return None
        return sum(v for _, v in self.samples) / len(self.samples)

    def _observed_ttft_ms(self) -> float | None:
        start = self.env.now - self.spec.metric_window_s
        ttfts = [ttft for t, ttft in self.fleet.first_token_ttfts if t >= start]
        # keep the list short: older entries can never enter a window again
        self.fleet.first_token_ttfts = [(t, v) for t, v in self.fleet.first_token_ttfts if t >= start]
        if not ttfts:
            return None
        return float(np.quantile(ttfts, self.spec.ttft_quantile)) * 1e3

    # ---- decision -----------------------------------------------------------------------------------------
    def recommend(self, current: int, ready: int) -> tuple[int, float | None]:
        """The raw recommendation (before stabilisation) and the metric value it came from."""
        spec = self.spec
        if spec.policy == "ttft":
            observed = self._observed_ttft_ms()
            if observed is None or ready == 0:
                return current, observed
            ratio = observed / spec.target
            if abs(ratio - 1.0) <= spec.tolerance:
                return current, observed
            return math.ceil(ready * ratio), observed
        total = self._windowed()
        if total is None:
            return current, None
        per_replica = total / max(ready, 1)
        if ready and abs(per_replica / spec.target - 1.0) <= spec.tolerance:
            return current, total
        return math.ceil(total / spec.target - 1e-9), total

    def _decide(self):
        spec, env, fleet = self.spec, self.env, self.fleet
        while True:
            self.next_decision_s = env.now + spec.interval_s
            yield env.timeout(spec.interval_s)
            now = env.now
            current = fleet.target
            ready = fleet.num_ready
            raw, metric = self.recommend(current, ready)
            raw = min(max(raw, spec.min_replicas), spec.max_replicas)
            self.recommendations.append((now, raw))
            horizon = max(spec.scale_up_stabilization_s, spec.scale_down_stabilization_s)
            while self.recommendations and self.recommendations[0][0] < now - horizon:
                self.recommendations.popleft()
            desired = current
            up_window = [r for t, r in self.recommendations if t >= now - spec.scale_up_stabilization_s]
            down_window = [r for t, r in self.recommendations if t >= now - spec.scale_down_stabilization_s]
            if min(up_window) > current and now - self.last_up_s >= spec.scale_up_cooldown_s:
                step = spec.max_scale_up_step or max(current, 4)  # HPA default: double, or +4
                desired = min(min(up_window), current + step)
            elif max(down_window) < current and now - self.last_down_s >= spec.scale_down_cooldown_s:
                desired = max(down_window)
            self.decisions.append(
                {
                    "t_s": now,
                    "metric": metric,
                    "ready": ready,
                    "recommended": raw,
                    "desired_before": current,
                    "desired": desired,
                }
            )
            if desired > current:
                self.last_up_s = now
            elif desired < current:
                self.last_down_s = now
            if desired != current:
                fleet.events.append((now, "scale", f"{current} -> {desired} replicas"))
                fleet.set_target(desired)
