"""The fleet: request intake (sim/fleet/intake.py), the replica controller (sim/fleet/controller.py) and
fault injection (sim/fleet/faults.py), wired together.

Randomness (fault times, stock-outs, back-off jitter) comes from streams of its own, derived from the run
seed, so adding faults never moves the arrivals or lengths.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import simpy

from sim.cost.base import StepCostModel
from sim.fleet.controller import FleetHooks, ReplicaController
from sim.fleet.faults import FaultInjector
from sim.fleet.intake import RequestIntake, RequestStream
from sim.fleet.policies import POLICIES
from sim.fleet.router import ROUTERS
from sim.fleet.settings import FleetSettings
from sim.replica.replica import Replica
from sim.replica.request import RequestState
from sim.replica.scheduler import SchedulerConfig
from sim.runtime.startup import StartupBreakdown

# Independent random streams per purpose (SeedSequence spawn keys), so one purpose never shifts another.
_STREAM_FAULTS, _STREAM_STOCKOUT, _STREAM_BACKOFF = 10, 11, 12


def _stream(seed: int, key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(key + 1)[key])


class Fleet:
    def __init__(
        self,
        env: simpy.Environment,
        settings: FleetSettings,
        scheduler_config: SchedulerConfig,
        make_cost_model: Callable[[int], StepCostModel],
        workload: RequestStream,
        *,
        seed: int,
        startup: StartupBreakdown | None = None,
        event_skipping: bool = True,
    ):
        """event_skipping: let replicas take runs of pure decode steps as one event (identical results; off
        = the reference path, one event per step). Off whenever faults are configured: a fault can strike
        at any time, so no replica is ever certainly left alone."""
        self.env = env
        hooks = FleetHooks()
        self.controller = ReplicaController(
            env,
            settings,
            scheduler_config,
            make_cost_model,
            startup=startup,
            stockout_rng=_stream(seed, _STREAM_STOCKOUT),
            hooks=hooks,
        )
        self.intake = RequestIntake(
            env,
            settings,
            workload,
            ROUTERS[settings.router](),
            self.controller,
            _stream(seed, _STREAM_BACKOFF),
        )
        self.faults = (
            FaultInjector(env, settings.faults, self.controller, _stream(seed, _STREAM_FAULTS))
            if settings.faults is not None
            else None
        )
        self.watchers: list[Callable[[], float]] = []  # next read time of each sampler / autoscaler
        hooks.requests_dropped = self._retry_all
        hooks.requests_finished = self.intake.ended
        hooks.replica_ready = self._replica_ready
        hooks.num_held = lambda: len(self.intake.held)
        if self.faults is not None:
            hooks.host_opened = self.faults.host_opened
        # Off with faults (a crash mid-run would find plans made ahead) and with a constant step time, whose
        # arrivals and step ends coincide exactly, where event order decides what a plan sees.
        self.event_skipping = (
            event_skipping and settings.faults is None and make_cost_model(0).name != "constant"
        )
        hooks.quiet_until = self.quiet_until if self.event_skipping else None
        scaler = settings.autoscaler
        self.controller.watch_first_tokens = scaler is not None and POLICIES[scaler.policy].watches_ttft
        self.controller.start_initial()

    def _replica_ready(self, replica: Replica) -> None:
        if self.faults is not None:
            self.faults.replica_ready(replica)
        self.intake.flush_held()

    def _retry_all(self, reqs: list[RequestState]) -> None:
        for req in reqs:
            self.intake.retry_or_fail(req)

    def quiet_until(self) -> float:
        """The earliest time anything outside a replica reads it as a whole: a sampler or an autoscaler.
        (A request routed to a replica truncates its run instead; see sim/replica/replica.py.)"""
        # With one routable replica every request goes to it: stop runs at the next routing rather than
        # price steps a truncation would take back.
        t = self.intake.next_dispatch_s if len(self.controller.routable) <= 1 else math.inf
        for watcher in self.watchers:
            w = watcher()
            if w < t:
                t = w
        return t

    # ---- what the run reads -----------------------------------------------------------------------------
    @property
    def replicas(self) -> list[Replica]:
        return self.controller.replicas

    @property
    def requests(self) -> list[RequestState]:
        return self.intake.requests

    @property
    def all_ended(self) -> simpy.Event:
        return self.intake.all_ended

    def log(self, end_s: float) -> dict:
        """What happened to the fleet: each replica's life, the event log, retries and hosts."""
        c = self.controller
        return {
            "replica_seconds": c.capacity_seconds(end_s),
            "lives": [
                {
                    "replica": i,
                    "started_s": life.started_s,
                    "ready_s": life.ready_s,
                    "ended_s": life.ended_s,
                    "end_reason": life.end_reason,
                }
                for i, life in enumerate(c.lives)
            ],
            "launches_lost": [
                {"started_s": life.started_s, "ended_s": life.ended_s, "end_reason": life.end_reason}
                for life in c.ended_launches
            ],
            "events": [{"t_s": t, "event": what, "detail": detail} for t, what, detail in c.events],
            "retries": self.intake.num_retries,
            "hosts_used": len(c.hosts.hosts),
        }
