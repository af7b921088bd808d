"""The fleet: request intake (sim/fleet/intake.py), the replica controller (sim/fleet/controller.py) and
fault injection (sim/fleet/faults.py), wired together.

Randomness (fault times, stock-outs, back-off jitter) comes from streams of its own, derived from the run
seed, so adding faults never moves the arrivals or lengths.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import simpy

from sim.cost.base import StepCostModel
from sim.fleet.controller import FleetHooks, ReplicaController
from sim.fleet.disaggregation import RequestPhases
from sim.fleet.faults import FaultInjector
from sim.fleet.intake import RequestIntake, RequestStream
from sim.fleet.policies import POLICIES
from sim.fleet.pool import PoolInfo
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


@dataclass(frozen=True)
class PoolParts:
    """What one pool needs to run: its description, its replicas' settings, scheduler and step costs, and a
    new replica's cold start (None: instant)."""

    info: PoolInfo
    settings: FleetSettings
    scheduler_config: SchedulerConfig
    make_cost_model: Callable[[int], StepCostModel]
    startup: StartupBreakdown | None


class Fleet:
    def __init__(
        self,
        env: simpy.Environment,
        settings: FleetSettings,
        pools: Sequence[PoolParts],
        workload: RequestStream,
        *,
        seed: int,
        event_skipping: bool = True,
        phases: RequestPhases | None = None,
    ):
        """settings: the fleet-wide settings (routing, admission, retries, the front end); pools: one or more
        pools of replicas, each with its own controller, autoscaler and faults. event_skipping: let replicas
        take runs of pure decode steps as one event (identical results; off = the reference path, one event
        per step). Off whenever faults are configured: a fault can strike at any time, so no replica is ever
        certainly left alone."""
        self.env = env
        ids = itertools.count()
        self._hooks: list[FleetHooks] = []
        controllers = []
        for i, pool in enumerate(pools):
            hooks = FleetHooks()
            controllers.append(
                ReplicaController(
                    env,
                    pool.settings,
                    pool.scheduler_config,
                    pool.make_cost_model,
                    startup=pool.startup,
                    # the first pool keeps the single-pool stream; others get their own
                    stockout_rng=_stream(seed, _STREAM_STOCKOUT + 10 * i),
                    hooks=hooks,
                    pool=pool.info,
                    replica_ids=ids,
                )
            )
            self._hooks.append(hooks)
        self.pools = list(pools)
        self.controllers = controllers
        self.controller = PooledControllers(controllers)
        self.intake = RequestIntake(
            env,
            settings,
            workload,
            ROUTERS[settings.router]([p.info for p in pools]),
            self.controller,
            _stream(seed, _STREAM_BACKOFF),
            phases,
        )
        self.faults = [
            FaultInjector(env, p.settings.faults, c, _stream(seed, _STREAM_FAULTS + 10 * i))
            if p.settings.faults is not None
            else None
            for i, (p, c) in enumerate(zip(pools, controllers, strict=True))
        ]
        self.watchers: list[Callable[[], float]] = []  # next read time of each sampler / autoscaler
        has_faults = any(f is not None for f in self.faults)
        # Off with faults (a crash mid-run would find plans made ahead) and with a constant step time, whose
        # arrivals and step ends coincide exactly, where event order decides what a plan sees.
        self.event_skipping = (
            event_skipping and not has_faults and all(p.make_cost_model(0).name != "constant" for p in pools)
        )
        for hooks, faults in zip(self._hooks, self.faults, strict=True):
            hooks.requests_dropped = self._retry_all
            hooks.requests_finished = self.intake.ended
            hooks.replica_ready = partial(self._replica_ready, faults)
            hooks.num_held = lambda: len(self.intake.held)
            if faults is not None:
                hooks.host_opened = faults.host_opened
            hooks.quiet_until = self.quiet_until if self.event_skipping else None
        for controller, pool in zip(controllers, pools, strict=True):
            scaler = pool.settings.autoscaler
            controller.watch_first_tokens = scaler is not None and POLICIES[scaler.policy].watches_ttft
            controller.start_initial()

    def _replica_ready(self, faults: FaultInjector | None, replica: Replica) -> None:
        if faults is not None:
            faults.replica_ready(replica)
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
        """What happened to the fleet: each replica's life, the event log, retries and hosts; with several
        pools, each pool's capacity held (for its price) and the pool of every life and event."""
        cs = self.controllers
        pooled = len(cs) > 1
        lives = sorted((rid, c, life) for c in cs for rid, life in c.lives.items())
        log = {
            "replica_seconds": sum(c.capacity_seconds(end_s) for c in cs),
            "lives": [
                {
                    "replica": rid,
                    "started_s": life.started_s,
                    "ready_s": life.ready_s,
                    "ended_s": life.ended_s,
                    "end_reason": life.end_reason,
                }
                | ({"pool": c.pool.name} if pooled else {})
                for rid, c, life in lives
            ],
            "launches_lost": [
                {"started_s": life.started_s, "ended_s": life.ended_s, "end_reason": life.end_reason}
                | ({"pool": c.pool.name} if pooled else {})
                for c in cs
                for life in c.ended_launches
            ],
            "events": [
                {"t_s": t, "event": what, "detail": detail}
                for t, what, detail in sorted(
                    (
                        (t, what, f"{c.pool.name}: {detail}" if pooled else detail)
                        for c in cs
                        for t, what, detail in c.events
                    ),
                    key=lambda e: e[0],
                )
            ],
            "retries": self.intake.num_retries,
            "hosts_used": sum(len(c.hosts.hosts) for c in cs),
        }
        if pooled:
            log["pools"] = [
                {
                    "pool": c.pool.name,
                    "hardware": c.pool.hardware,
                    "chips_per_replica": c.pool.chips_per_replica,
                    "usd_per_chip_hour": c.pool.usd_per_chip_hour,
                    "replica_seconds": c.capacity_seconds(end_s),
                    "replicas_started": len(c.lives),
                }
                for c in cs
            ]
        return log


class PooledControllers:
    """The fleet's pools seen as one: what intake routes among and what the state sampler reads. Each pool
    keeps its own controller (targets, launches, hosts, autoscaler); replica ids are unique across pools."""

    def __init__(self, controllers: Sequence[ReplicaController]):
        self.pools = list(controllers)

    @property
    def routable(self) -> list[Replica]:
        if len(self.pools) == 1:
            return self.pools[0].routable
        return [r for c in self.pools for r in c.routable]

    def routable_in(self, pool: int | None) -> list[Replica]:
        return self.routable if pool is None else self.pools[pool].routable

    @property
    def up(self) -> list[Replica]:
        return [r for c in self.pools for r in c.up]

    def refused(self, replica: Replica) -> None:
        self.pools[replica.pool].refused(replica)

    @property
    def replicas(self) -> list[Replica]:
        """Every replica that became ready, by replica id (= its position)."""
        if len(self.pools) == 1:
            return self.pools[0].replicas
        return sorted((r for c in self.pools for r in c.replicas), key=lambda r: r.replica_id)

    @property
    def target(self) -> int:
        return sum(c.target for c in self.pools)

    @property
    def num_ready(self) -> int:
        return sum(c.num_ready for c in self.pools)

    @property
    def launches(self) -> list:
        return [launch for c in self.pools for launch in c.launches]
