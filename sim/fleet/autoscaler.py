"""The autoscaler: a SimPy process that watches one fleet metric and sets the controller's target count.

It follows the Kubernetes HPA algorithm (docs: "Horizontal Pod Autoscaling"), with Knative-style metric
averaging:
  1. every sample_s, record the policy's metric (sim/fleet/policies.py) over READY replicas;
  2. every interval_s, average the samples of the last metric_window_s and ask the policy for a
     recommendation (ceil(total / target) for per-replica targets, ceil(ready x observed / target) for
     ttft), unchanged while within `tolerance` of the target;
  3. stabilise: scale up to the lowest recommendation of the last scale_up_stabilization_s, down to the
     highest of the last scale_down_stabilization_s; clamp to [min, max]; at most max_scale_up_step more
     (default HPA's max(double, +4)); respect cooldowns.
The controller (sim/fleet/controller.py) then launches or drains replicas; a new replica serves only after
its cold start, which is the whole point: the metric keeps rising while replicas start.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import simpy

from sim.fleet.controller import ReplicaController
from sim.fleet.policies import POLICIES
from sim.fleet.spec import AutoscalerSpec


class Autoscaler:
    def __init__(self, env: simpy.Environment, spec: AutoscalerSpec, controller: ReplicaController):
        self.env, self.spec, self.controller = env, spec, controller
        self.policy = POLICIES[spec.policy]()
        self.samples: deque[tuple[float, float]] = deque()  # (time, fleet total of the metric)
        self.recommendations: deque[tuple[float, int]] = deque()  # (time, recommended replicas)
        self.last_up_s = -math.inf
        self.last_down_s = -math.inf
        self.decisions: list[dict] = []  # one row per decision, for the report
        self.next_sample_s = self.next_decision_s = 0.0  # when it next reads the fleet
        if self.policy.sampled:
            env.process(self._sample())
        env.process(self._decide())

    def next_read_s(self) -> float:
        """When it next reads or changes the fleet (for event skipping)."""
        if not self.policy.sampled:
            return self.next_decision_s
        return min(self.next_sample_s, self.next_decision_s)

    # ---- metric -------------------------------------------------------------------------------------------
    def _sample(self):
        while True:
            self.samples.append((self.env.now, self.policy.sample(self.controller)))
            self.next_sample_s = self.env.now + self.spec.sample_s
            yield self.env.timeout(self.spec.sample_s)

    def _observed(self) -> float | None:
        """The metric over the last window: the mean of the samples, or the TTFT quantile in ms (None before
        anything was observed)."""
        start = self.env.now - self.spec.metric_window_s
        if not self.policy.sampled:
            ttfts = self.controller.recent_ttfts(start)
            return float(np.quantile(ttfts, self.spec.ttft_quantile)) * 1e3 if ttfts else None
        while self.samples and self.samples[0][0] < start:
            self.samples.popleft()
        if not self.samples:
            return None
        return sum(v for _, v in self.samples) / len(self.samples)

    # ---- decision -----------------------------------------------------------------------------------------
    def _decide(self):
        spec, env, controller = self.spec, self.env, self.controller
        while True:
            self.next_decision_s = env.now + spec.interval_s
            yield env.timeout(spec.interval_s)
            now = env.now
            current = controller.target
            ready = controller.num_ready
            metric = self._observed()
            raw = self.policy.recommend(current, ready, metric, spec.target, spec.tolerance)
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
                controller.log("scale", f"{current} -> {desired} replicas")
                controller.set_target(desired)
