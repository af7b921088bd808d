"""Samples the fleet's state every window of simulated time: queues, KV use, work done, and the replica
counts (desired by the controller, ready, starting), into sim/metrics/timeseries.py's FleetSamples."""

from __future__ import annotations

import math

import simpy

from sim.fleet.fleet import Fleet
from sim.metrics.timeseries import FleetSamples


class StateSampler:
    def __init__(self, env: simpy.Environment, fleet: Fleet, window_s: float):
        self.env, self.fleet = env, fleet
        self.samples = FleetSamples(window_s)
        self.next_s = window_s  # when the next sample is taken
        env.process(self._run())

    @property
    def window_s(self) -> float:
        return self.samples.window_s

    def _run(self):
        while True:
            self.next_s = self.env.now + self.window_s
            yield self.env.timeout(self.window_s)
            self.sample()

    def finish(self) -> FleetSamples:
        """Close the last, partial window at the end of the run."""
        if not self.samples.times or self.samples.times[-1] < self.env.now:
            self.sample()
        return self.samples

    def sample(self) -> None:
        controller, s = self.fleet.controller, self.samples
        up = controller.up
        s.times.append(self.env.now)
        s.waiting.append(sum(r.scheduler.num_waiting for r in up) + len(self.fleet.intake.held))
        s.running.append(sum(r.scheduler.num_running for r in up))
        total = sum(r.scheduler.kv.num_blocks for r in up)
        used = sum(r.scheduler.kv.num_used_blocks for r in up)
        s.kv_used_frac.append(used / total if total else math.nan)
        everyone = controller.replicas
        s.tokens.append(sum(r.ledger.num_tokens for r in everyone))
        s.padding_tokens.append(sum(r.ledger.padding_tokens for r in everyone))
        s.desired.append(controller.target)
        s.ready.append(controller.num_ready)
        s.starting.append(len(controller.launches))
