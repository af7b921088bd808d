"""The replica controller: keeps the number of replicas at its target, and the lives of those replicas.

Life of a replica: *launch* (a slot on a host; a new host first has to be acquired, maybe after stock-outs)
-> cold start (the sum of its parts, sim/runtime/startup.py) -> READY, routable -> DRAINING on scale-down or
a notice -> STOPPED; or CRASHED at any time by a fault. The router only sees routable replicas -- crashed
ones included until the crash is detected (or enough refused connections eject them). Requests a replica
drops go back to intake (sim/fleet/intake.py) to be retried or failed.

The autoscaler (and anything else that steers the fleet) uses the public interface: ``target`` and
``set_target``, ``num_ready``, ``ready_load()``, ``recent_ttfts()`` and ``log()``.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import simpy

from sim.cost.base import StepCostModel
from sim.fleet.hosts import Host, HostPool
from sim.fleet.pool import PoolInfo
from sim.fleet.settings import FleetSettings
from sim.replica.replica import Replica, ReplicaState
from sim.replica.request import RequestState
from sim.replica.scheduler import SchedulerConfig
from sim.runtime.startup import StartupBreakdown


@dataclass(eq=False)
class Launch:
    """A replica being started: it holds a host slot and becomes a Replica when its cold start ends."""

    launch_id: int
    host: Host
    started_s: float
    ready_s: float
    cancelled: bool = False


@dataclass
class ReplicaLife:
    """When a replica's capacity was held, for replica-hours and cost: from launch to stop or crash."""

    started_s: float
    ready_s: float | None = None
    ended_s: float | None = None
    end_reason: str = ""


@dataclass(frozen=True, slots=True)
class ReadyLoad:
    """Load over the ready replicas; requests the router holds count as waiting and outstanding (load no
    replica has yet)."""

    num_outstanding: int
    num_waiting: int
    kv_usage: float


class FleetHooks:
    """What the controller tells the rest of the fleet (sim/fleet/fleet.py wires these to intake and faults)."""

    def __init__(self) -> None:
        self.requests_dropped: Callable[[list[RequestState]], None] = lambda reqs: None
        self.requests_finished: Callable[[list[RequestState]], None] = lambda reqs: None
        self.replica_ready: Callable[[Replica], None] = lambda replica: None
        self.host_opened: Callable[[Host], None] = lambda host: None
        self.num_held: Callable[[], int] = lambda: 0
        self.quiet_until: Callable[[], float] | None = None  # None: no event skipping


class ReplicaController:
    def __init__(
        self,
        env: simpy.Environment,
        settings: FleetSettings,
        scheduler_config: SchedulerConfig,
        make_cost_model: Callable[[int], StepCostModel],
        *,
        startup: StartupBreakdown | None,
        stockout_rng: np.random.Generator,
        hooks: FleetHooks,
        pool: PoolInfo | None = None,
        replica_ids: Iterator[int] | None = None,
    ):
        """make_cost_model(replica_id): one per replica (runtimes keep per-replica state such as compiled
        shapes). startup: a new replica's cold start with the scenario's cache state (None: instant).
        pool: the pool these replicas form (a fleet of several pools, sim/fleet/pools.py); replica_ids: the
        fleet's one source of replica ids, shared by its pools (default: this controller's own count)."""
        self.env = env
        self.pool = (
            pool
            if pool is not None
            else PoolInfo("fleet", 0, "", settings.tensor_parallel_size, settings.usd_per_chip_hour, 0)
        )
        self._replica_ids = replica_ids if replica_ids is not None else itertools.count()
        self.settings = settings
        self.scheduler_config = scheduler_config
        self.make_cost_model = make_cost_model
        self.startup = startup
        self.stockout_rng = stockout_rng
        self.hooks = hooks
        self.hosts = HostPool(settings.replicas_per_host)
        self.replicas: list[Replica] = []  # every replica of this pool that became ready, in order
        self._hosts: dict[int, Host] = {}  # replica id -> the host it runs on
        self.lives: dict[int, ReplicaLife] = {}  # by replica id
        self.routable: list[Replica] = []  # what the router may pick
        self.launches: list[Launch] = []  # cold starts in progress, oldest first
        self.launch_lives: dict[int, ReplicaLife] = {}  # launch id -> its life until it becomes a replica
        self.ended_launches: list[ReplicaLife] = []  # cancelled or crashed before ready
        self._num_launches = 0
        self.target = settings.replicas
        self.events: list[tuple[float, str, str]] = []  # (time, what, detail): the fleet's log
        self.watch_first_tokens = False  # set by an autoscaler that watches TTFT
        self._ttfts: deque[tuple[float, float]] = deque()  # (time, TTFT) as first tokens come out
        self._refusals: dict[int, int] = {}  # replica id -> refused connections since its crash
        self._crashed_unseen: set[int] = set()  # ready replicas that crashed, not detected yet
        self._repairs_owed = 0  # crashed machines whose repair a replacement may wait for (faults.repair_s)

    def start_initial(self) -> None:
        """The initial fleet: up and ready at t = 0."""
        for i in range(self.settings.replicas):
            marker = ("initial", i)
            host, new = self.hosts.place(marker)
            if new:
                self.hooks.host_opened(host)
            self._make_ready(host, 0.0, marker)

    # ---- what the autoscaler reads ------------------------------------------------------------------------
    @property
    def up(self) -> list[Replica]:
        """Replicas holding work: ready or draining."""
        return [r for r in self.replicas if r.is_up]

    @property
    def num_ready(self) -> int:
        return sum(1 for r in self.replicas if r.state == ReplicaState.READY)

    @property
    def num_counted(self) -> int:
        """What the controller believes it runs: ready (crashes not yet detected included) + starting."""
        return self.num_ready + len(self._crashed_unseen) + len(self.launches)

    def ready_load(self) -> ReadyLoad:
        ready = [r for r in self.replicas if r.state == ReplicaState.READY]
        held = self.hooks.num_held()
        return ReadyLoad(
            num_outstanding=sum(r.num_outstanding for r in ready) + held,
            num_waiting=sum(r.scheduler.num_waiting for r in ready) + held,
            kv_usage=sum(r.kv_usage for r in ready),
        )

    def recent_ttfts(self, since_s: float) -> list[float]:
        """First-token latencies observed since since_s (older ones are forgotten)."""
        while self._ttfts and self._ttfts[0][0] < since_s:
            self._ttfts.popleft()
        return [ttft for _, ttft in self._ttfts]

    def log(self, what: str, detail: str) -> None:
        self.events.append((self.env.now, what, detail))

    # ---- replica lifecycle --------------------------------------------------------------------------------
    def _on_first_token(self, req: RequestState) -> None:
        self._ttfts.append((self.env.now, req.first_token_s - req.arrival_s))

    def _make_ready(self, host: Host, started_s: float, marker) -> Replica:
        """A replica whose cold start (begun at started_s) is over takes marker's slot on host."""
        replica_id = next(self._replica_ids)
        replica = Replica(
            self.env,
            replica_id,
            self.scheduler_config,
            self.make_cost_model(replica_id),
            request_timeout_s=self.settings.request_timeout_s,
            on_finished=self.hooks.requests_finished,
            on_idle=self._on_stopped,
            on_first_token=self._on_first_token if self.watch_first_tokens else None,
            quiet_until=self.hooks.quiet_until,
            pool=self.pool.index,
        )
        self._hosts[replica_id] = host
        host.members.discard(marker)
        host.members.add(replica)
        self.replicas.append(replica)
        self.lives[replica_id] = ReplicaLife(started_s, ready_s=self.env.now)
        self.routable.append(replica)
        self.hooks.replica_ready(replica)
        return replica

    def _launch(self) -> None:
        """Start one replica: a slot on a running host, or a new host (acquired first, maybe after stock-outs)."""
        env = self.env
        launch_id = self._num_launches
        self._num_launches += 1
        marker = ("launch", launch_id)
        host, new_host = self.hosts.place(marker)
        parts = dict(self.startup.components) if self.startup is not None else {}
        wait = sum(parts.values())
        faults = self.settings.faults
        repair = faults.repair_s if faults is not None else None
        if new_host and repair is not None and self._repairs_owed > 0:
            # the machine lost to a crash, back from repair: it replaces provisioning (and any stock-out)
            self._repairs_owed -= 1
            self.hooks.host_opened(host)
            wait += repair - parts.get("provision", 0.0)
        elif new_host:
            self.hooks.host_opened(host)
            p = self.settings.stockout_probability
            if p > 0:  # failed capacity requests before the one that succeeds
                wait += int(self.stockout_rng.geometric(1.0 - p) - 1) * self.settings.stockout_retry_s
        else:
            wait -= parts.get("provision", 0.0)
        launch = Launch(launch_id, host, env.now, env.now + wait)
        self.launches.append(launch)
        self.launch_lives[launch_id] = ReplicaLife(env.now)
        self.log("launch", f"ready in {wait:.0f} s" + (" (new host)" if new_host else ""))
        env.process(self._cold_start(launch, marker, wait))

    def _cold_start(self, launch: Launch, marker, wait: float):
        yield self.env.timeout(wait)
        if launch.cancelled:
            return
        self.launches.remove(launch)
        life = self.launch_lives.pop(launch.launch_id)
        replica = self._make_ready(launch.host, life.started_s, marker)
        self.log("ready", f"replica {replica.replica_id}")

    def _cancel_launch(self, launch: Launch, reason: str) -> None:
        launch.cancelled = True
        self.launches.remove(launch)
        self.hosts.leave(launch.host, ("launch", launch.launch_id))
        life = self.launch_lives.pop(launch.launch_id)
        life.ended_s, life.end_reason = self.env.now, reason
        self.ended_launches.append(life)

    def _end_life(self, replica: Replica, reason: str) -> None:
        life = self.lives[replica.replica_id]
        if life.ended_s is None:
            life.ended_s, life.end_reason = self.env.now, reason
        host = self._hosts.get(replica.replica_id)
        if host is not None:
            self.hosts.leave(host, replica)

    def _unroute(self, replica: Replica) -> None:
        if replica in self.routable:
            self.routable.remove(replica)

    def _on_stopped(self, replica: Replica) -> None:
        """A draining replica finished its last request."""
        self._end_life(replica, "stopped")
        self.log("stopped", f"replica {replica.replica_id}")

    def refused(self, replica: Replica) -> None:
        """Passive outlier detection: enough refused connections in a row take a replica out of routing
        before the health check notices (it is still replaced only at detection)."""
        limit = self.settings.retry.eject_after_refusals
        self._refusals[replica.replica_id] = count = self._refusals.get(replica.replica_id, 0) + 1
        if limit is not None and count >= limit:
            self._unroute(replica)

    # ---- target -------------------------------------------------------------------------------------------
    def set_target(self, target: int) -> None:
        self.target = target
        self.reconcile()

    def reconcile(self) -> None:
        """Launch or remove replicas until the count the controller sees equals the target."""
        while self.num_counted < self.target:
            self._launch()
        while self.num_counted > self.target:
            if self.launches:  # newest cold start first: it has the most left to do
                self._cancel_launch(self.launches[-1], "scaled down while starting")
                continue
            alive = [r for r in self.routable if r.state == ReplicaState.READY]
            if not alive:
                break  # only undetected crashes are left; detection will settle the count
            victim = alive[-1]
            self._unroute(victim)
            self.log("scale-down", f"replica {victim.replica_id}")
            if self.settings.drain_on_scale_down:
                victim.drain()
            else:
                self.hooks.requests_dropped(victim.kill())
                self._end_life(victim, "removed")

    # ---- losing replicas (faults call these) --------------------------------------------------------------
    def crash(self, replica: Replica, cause: str) -> None:
        """replica dies now; its requests are retried; the router notices after detection_s."""
        if not replica.is_up:
            return
        self.log("crash", f"replica {replica.replica_id}: {cause}")
        if replica.state == ReplicaState.READY:
            self._crashed_unseen.add(replica.replica_id)
        self._repairs_owed += 1
        self.hooks.requests_dropped(replica.kill())
        self._end_life(replica, cause)
        faults = self.settings.faults
        self.env.process(self._detect(replica, faults.detection_s if faults is not None else 0.0))

    def _detect(self, replica: Replica, after_s: float):
        yield self.env.timeout(after_s)
        self._unroute(replica)
        if replica.replica_id not in self._crashed_unseen:
            return  # it had already left the count (draining)
        self._crashed_unseen.discard(replica.replica_id)
        faults = self.settings.faults
        if faults is not None and not faults.replace:
            self.target -= 1
        self.reconcile()

    def notice(self, replica: Replica, notice_s: float, cause: str) -> None:
        """replica will be taken away in notice_s: it stops taking requests now and a replacement starts."""
        if replica.state != ReplicaState.READY:
            return
        self.log("notice", f"replica {replica.replica_id}: {cause}, {notice_s:g} s")
        self._unroute(replica)
        replica.drain()
        faults = self.settings.faults
        if faults is not None and not faults.replace:
            self.target -= 1
        self.reconcile()
        self.env.process(self._take_away(replica, notice_s, cause))

    def _take_away(self, replica: Replica, after_s: float, cause: str):
        yield self.env.timeout(after_s)
        if replica.is_up:
            self.hooks.requests_dropped(replica.kill())
            self._end_life(replica, cause)

    def _host_members(self, host: Host) -> tuple[list[Replica], list[Launch]]:
        replicas = [m for m in host.members if isinstance(m, Replica)]
        launches = [launch for launch in self.launches if launch.host is host]
        return sorted(replicas, key=lambda r: r.replica_id), launches

    def crash_host(self, host: Host, cause: str) -> None:
        self._lose_host(host, lambda replica: self.crash(replica, cause), cause)

    def notice_host(self, host: Host, notice_s: float, cause: str) -> None:
        self._lose_host(host, lambda replica: self.notice(replica, notice_s, cause), cause)

    def _lose_host(self, host: Host, lose_replica: Callable[[Replica], None], cause: str) -> None:
        """The host goes away (now, or after a notice): its cold starts are cancelled, each replica is lost
        by lose_replica, no new replica is placed on it, and the controller replaces what it lost."""
        if not host.alive:
            return
        replicas, launches = self._host_members(host)
        for launch in launches:
            self._cancel_launch(launch, cause)
        for replica in replicas:
            lose_replica(replica)
        host.alive = False
        self.reconcile()

    # ---- end of run ---------------------------------------------------------------------------------------
    def capacity_seconds(self, end_s: float) -> float:
        """Replica-seconds of capacity held (launch to stop), cold starts included, up to end_s."""
        lives = [*self.lives.values(), *self.ended_launches, *self.launch_lives.values()]
        return sum((life.ended_s if life.ended_s is not None else end_s) - life.started_s for life in lives)
