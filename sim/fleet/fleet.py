"""The fleet: replicas that come and go, the router in front of them, and the controller that keeps their
number at the target (set by the scenario, then by the autoscaler).

Life of a replica: *launch* (a slot on a host; a new host first has to be acquired) -> cold start (the sum of
its parts, sim/runtime/startup.py) -> READY, routable -> DRAINING on scale-down or a notice -> STOPPED; or
CRASHED at any time by a fault. The router only sees ready replicas -- and crashed ones until the crash is
detected. Requests a crash drops are retried (budget, back-off) or failed with a reason; requests that find
no ready replica wait in the router's hold queue (as Knative's activator holds them); nothing vanishes:
every request ends completed or failed.

Randomness (fault times, stock-outs, back-off jitter) comes from streams of its own, derived from the run
seed, so adding faults never moves the arrivals or lengths.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from sim.cost.base import StepCostModel
from sim.fleet.faults import HOUR_S, time_to_failure_s
from sim.fleet.hosts import Host, HostPool
from sim.fleet.router import make_router
from sim.replica.replica import Replica, ReplicaState
from sim.replica.request import RequestState, Status
from sim.replica.scheduler import SchedulerConfig
from sim.resolve import ResolvedScenario
from sim.runtime.startup import StartupBreakdown
from sim.traffic.workload import Workload

REJECT_REPLICA = "rejected: replica queue full (HTTP 503)"
REJECT_FLEET = "rejected: fleet queue full (HTTP 429)"
TOO_LONG = "prompt longer than max_model_len"
TIMEOUT = "timeout"
LOST = "replica failure: retry budget spent"

# Independent random streams per purpose (SeedSequence spawn keys), so one purpose never shifts another.
_STREAM_FAULTS, _STREAM_STOCKOUT, _STREAM_BACKOFF = 10, 11, 12


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


class Fleet:
    def __init__(
        self,
        env: simpy.Environment,
        resolved: ResolvedScenario,
        make_cost_model: Callable[[int], StepCostModel],
        workload: Workload,
        *,
        seed: int,
        api_overhead_s: float = 0.0,
        startup: StartupBreakdown | None = None,
        event_skipping: bool = True,
    ):
        """make_cost_model(replica_id): one per replica (runtimes keep per-replica state such as compiled
        shapes). startup: a new replica's cold start with the scenario's cache state (None: instant).
        api_overhead_s: per-request server work outside engine steps (HTTP, tokenisation); a request reaches
        the engine that long after the client sent it, and its latencies still count from the send.
        event_skipping: let replicas take runs of pure decode steps as one event (identical results; off
        = the reference path, one event per step). Off whenever faults are configured: a fault can strike
        at any time, so no replica is ever certainly left alone."""
        sc = resolved.scenario
        self.env = env
        self.workload = workload
        self.make_cost_model = make_cost_model
        self.max_model_len = resolved.engine.max_model_len
        self.api_overhead_s = api_overhead_s
        self.timeout_s = sc.workload.request_timeout_s
        self.tp = resolved.tp
        self.admission = sc.fleet.admission
        self.retry = sc.fleet.retry
        self.faults = sc.faults
        self.drain_on_scale_down = sc.autoscaler.drain_on_scale_down if sc.autoscaler else True
        self.startup = startup
        self.scheduler_config = SchedulerConfig(
            max_num_seqs=resolved.engine.max_num_seqs,
            max_num_batched_tokens=resolved.engine.max_num_batched_tokens,
            block_size=resolved.engine.block_size,
            num_blocks=resolved.memory.num_blocks,
            enable_chunked_prefill=resolved.engine.enable_chunked_prefill,
        )
        stockout = sc.startup
        self.stockout_p, self.stockout_retry_s = stockout.stockout_probability, stockout.stockout_retry_s
        seq = np.random.SeedSequence(seed)
        self.fault_rng = np.random.default_rng(seq.spawn(_STREAM_FAULTS + 1)[_STREAM_FAULTS])
        self.stockout_rng = np.random.default_rng(seq.spawn(_STREAM_STOCKOUT + 1)[_STREAM_STOCKOUT])
        self.backoff_rng = np.random.default_rng(seq.spawn(_STREAM_BACKOFF + 1)[_STREAM_BACKOFF])
        self.router = make_router(sc.fleet.router)
        self.sessions = workload.session_id

        self.hosts = HostPool(resolved.replicas_per_host)
        self.replicas: list[Replica] = []  # every replica that became ready; replica_id = its index
        self.lives: list[ReplicaLife] = []  # by replica id
        self.routable: list[Replica] = []  # what the router may pick
        self.launches: list[Launch] = []  # cold starts in progress, oldest first
        self.launch_lives: dict[int, ReplicaLife] = {}  # launch id -> its life until it becomes a replica
        self.ended_launches: list[ReplicaLife] = []  # cancelled or crashed before ready
        self._num_launches = 0
        self.target = sc.fleet.replicas
        self.held: dict[int, RequestState] = {}  # router hold queue (no routable replica), in order
        self.first_token_ttfts: list[tuple[float, float]] = []  # (time, TTFT) as first tokens come out
        self.watch_ttft = sc.autoscaler is not None and sc.autoscaler.policy == "ttft"
        self.events: list[tuple[float, str, str]] = []  # (time, what, detail): the fleet's log
        self.num_retries = 0
        # Off with faults (a crash mid-run would find plans made ahead) and with a constant step time, whose
        # arrivals and step ends coincide exactly, where event order decides what a plan sees.
        self.event_skipping = event_skipping and sc.faults is None and make_cost_model(0).name != "constant"
        self.next_dispatch_s = 0.0  # when the release process next routes a request (inf when done)
        self.retries_pending = 0  # retries waiting out their back-off
        self.watchers: list[Callable[[], float]] = []  # next read time of each sampler / autoscaler
        self._avoid: dict[int, int] = {}  # req_id -> replica a pending retry must not go back to
        self._refusals: dict[int, int] = {}  # replica id -> refused connections since its crash
        self._crashed_unseen: set[int] = set()  # ready replicas that crashed, not detected yet
        self._repairs_owed = 0  # crashed machines whose repair a replacement may wait for (faults.repair_s)

        self.requests: list[RequestState] = []
        self.num_ended = 0
        self.all_ended = env.event()
        if workload.num_requests == 0:
            self.all_ended.succeed()
        for i in range(sc.fleet.replicas):  # the initial fleet is up and ready at t=0
            marker = ("initial", i)
            host, new = self.hosts.place(marker)
            if new:
                self._start_host_faults(host)
            self._make_ready(host, 0.0, marker)
        self._schedule_injected()
        env.process(self._release())

    # ---- counts -------------------------------------------------------------------------------------------
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

    # ---- requests -----------------------------------------------------------------------------------------
    def _release(self):
        env = self.env
        arrival = self.workload.arrival_s.tolist()
        prompt = self.workload.prompt_tokens.tolist()
        output = self.workload.output_tokens.tolist()
        max_len = self.max_model_len
        delay = self.api_overhead_s
        for i, t in enumerate(arrival):
            if t + delay > env.now:
                wait = t + delay - env.now
                self.next_dispatch_s = env.now + wait  # the float SimPy will give the event
                yield env.timeout(wait)
            # vLLM caps the output at max_model_len - prompt and rejects prompts that leave no room (HTTP 400).
            req = RequestState(i, t, prompt[i], min(output[i], max_len - prompt[i]))
            self.requests.append(req)
            if prompt[i] >= max_len:
                self._fail(req, TOO_LONG, end_s=t)
                continue
            self._dispatch(req)
        self.next_dispatch_s = math.inf

    def _dispatch(self, req: RequestState) -> None:
        env = self.env
        if env.now >= req.arrival_s + self.timeout_s:
            self._fail(req, TIMEOUT)
            return
        cap = self.admission.max_fleet_waiting
        if cap is not None and sum(r.scheduler.num_waiting for r in self.up) + len(self.held) >= cap:
            self._fail(req, REJECT_FLEET)
            return
        if not self.routable:
            self._hold(req)
            return
        session = int(self.sessions[req.req_id]) if self.sessions is not None else -1
        candidates = self.routable
        avoid = self._avoid.pop(req.req_id, None)
        if avoid is not None and len(candidates) > 1:
            candidates = [r for r in candidates if r.replica_id != avoid] or candidates
        replica = self.router.choose(candidates, session)
        if replica.state == ReplicaState.CRASHED:  # not detected yet: the connection is refused
            req.replica_id = replica.replica_id
            self._refused(replica)
            self._retry_or_fail(req)
            return
        cap = self.admission.max_waiting_per_replica
        if cap is not None and replica.scheduler.num_waiting >= cap:
            self._fail(req, REJECT_REPLICA)
            return
        replica.submit(req)

    def _refused(self, replica: Replica) -> None:
        """Passive outlier detection: enough refused connections in a row take a replica out of routing
        before the health check notices (the controller still replaces it only at detection)."""
        limit = self.retry.eject_after_refusals
        self._refusals[replica.replica_id] = count = self._refusals.get(replica.replica_id, 0) + 1
        if limit is not None and count >= limit:
            self._unroute(replica)

    def _hold(self, req: RequestState) -> None:
        """No replica to send to: hold the request until one is ready or its client gives up."""
        self.held[req.req_id] = req
        deadline = req.arrival_s + self.timeout_s
        self.env.timeout(max(0.0, deadline - self.env.now)).callbacks.append(
            lambda _, req=req: self._held_timeout(req)
        )

    def _held_timeout(self, req: RequestState) -> None:
        if self.held.pop(req.req_id, None) is not None:
            self._fail(req, TIMEOUT)

    def _flush_held(self) -> None:
        if not self.held:
            return
        held, self.held = list(self.held.values()), {}
        for req in held:
            self._dispatch(req)

    def _retry_or_fail(self, req: RequestState) -> None:
        """A replica dropped req: start it over elsewhere after a back-off, or fail it."""
        if req.num_attempts - 1 >= self.retry.budget:
            self._fail(req, LOST)
            return
        if self.retry.avoid_previous_replica and req.replica_id >= 0:
            self._avoid[req.req_id] = req.replica_id
        req.restart()
        self.num_retries += 1
        attempt = req.num_attempts - 1
        ceiling = min(self.retry.backoff_max_s, self.retry.backoff_base_s * (2**attempt - 1))
        delay = float(self.backoff_rng.uniform(0.0, ceiling)) if ceiling > 0 else 0.0
        self.retries_pending += 1
        self.env.timeout(delay).callbacks.append(lambda _, req=req: self._redispatch(req))

    def _redispatch(self, req: RequestState) -> None:
        self.retries_pending -= 1
        self._dispatch(req)

    def quiet_until(self) -> float:
        """The earliest time anything outside a replica reads it as a whole: a sampler or an autoscaler.
        (A request routed to a replica truncates its run instead; see sim/replica/replica.py.)"""
        # With one routable replica every request goes to it: stop runs at the next routing rather than
        # price steps a truncation would take back.
        t = self.next_dispatch_s if len(self.routable) <= 1 else math.inf
        for watcher in self.watchers:
            w = watcher()
            if w < t:
                t = w
        return t

    def _fail(self, req: RequestState, reason: str, end_s: float | None = None) -> None:
        req.status = Status.FAILED
        req.fail_reason = reason
        req.end_s = self.env.now if end_s is None else end_s
        self._on_finished([req])

    def _on_finished(self, reqs: list[RequestState]) -> None:
        self.num_ended += len(reqs)
        if self.num_ended >= self.workload.num_requests and not self.all_ended.triggered:
            self.all_ended.succeed()

    def _on_first_token(self, req: RequestState) -> None:
        self.first_token_ttfts.append((self.env.now, req.first_token_s - req.arrival_s))

    # ---- replica lifecycle --------------------------------------------------------------------------------
    def _make_ready(self, host: Host, started_s: float, marker) -> Replica:
        """A replica whose cold start (begun at started_s) is over takes marker's slot on host."""
        replica_id = len(self.replicas)
        replica = Replica(
            self.env,
            replica_id,
            self.scheduler_config,
            self.make_cost_model(replica_id),
            request_timeout_s=self.timeout_s,
            on_finished=self._on_finished,
            on_idle=self._on_stopped,
            on_first_token=self._on_first_token if self.watch_ttft else None,
            quiet_until=self.quiet_until if self.event_skipping else None,
        )
        replica.host = host
        host.members.discard(marker)
        host.members.add(replica)
        self.replicas.append(replica)
        self.lives.append(ReplicaLife(started_s, ready_s=self.env.now))
        self.routable.append(replica)
        if self.faults is not None and self.faults.chip_failures is not None:
            ttf = time_to_failure_s(self.faults.chip_failures, self.tp, self.fault_rng)
            self.env.timeout(ttf).callbacks.append(
                lambda _, r=replica: self.crash(r, "chip failure") if r.is_up else None
            )
        self._flush_held()
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
        repair = self.faults.repair_s if self.faults is not None else None
        if new_host and repair is not None and self._repairs_owed > 0:
            # the machine lost to a crash, back from repair: it replaces provisioning (and any stock-out)
            self._repairs_owed -= 1
            self._start_host_faults(host)
            wait += repair - parts.get("provision", 0.0)
        elif new_host:
            self._start_host_faults(host)
            if self.stockout_p > 0:  # failed capacity requests before the one that succeeds
                wait += int(self.stockout_rng.geometric(1.0 - self.stockout_p) - 1) * self.stockout_retry_s
        else:
            wait -= parts.get("provision", 0.0)
        launch = Launch(launch_id, host, env.now, env.now + wait)  # the float SimPy gives the timeout
        self.launches.append(launch)
        self.launch_lives[launch_id] = ReplicaLife(env.now)
        self.events.append(
            (env.now, "launch", f"ready in {wait:.0f} s" + (" (new host)" if new_host else ""))
        )
        env.timeout(wait).callbacks.append(lambda _: self._launch_done(launch, marker))

    def _launch_done(self, launch: Launch, marker) -> None:
        if launch.cancelled:
            return
        self.launches.remove(launch)
        life = self.launch_lives.pop(launch.launch_id)
        replica = self._make_ready(launch.host, life.started_s, marker)
        self.events.append((self.env.now, "ready", f"replica {replica.replica_id}"))

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
        if replica.host is not None:
            self.hosts.leave(replica.host, replica)

    def _unroute(self, replica: Replica) -> None:
        if replica in self.routable:
            self.routable.remove(replica)

    def _on_stopped(self, replica: Replica) -> None:
        """A draining replica finished its last request."""
        self._end_life(replica, "stopped")
        self.events.append((self.env.now, "stopped", f"replica {replica.replica_id}"))

    # ---- controller ---------------------------------------------------------------------------------------
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
            self.events.append((self.env.now, "scale-down", f"replica {victim.replica_id}"))
            if self.drain_on_scale_down:
                victim.drain()
            else:
                for req in victim.kill():
                    self._retry_or_fail(req)
                self._end_life(victim, "removed")

    # ---- faults -------------------------------------------------------------------------------------------
    def crash(self, replica: Replica, cause: str) -> None:
        """replica dies now; its requests are retried; the router notices after detection_s."""
        if not replica.is_up:
            return
        self.events.append((self.env.now, "crash", f"replica {replica.replica_id}: {cause}"))
        if replica.state == ReplicaState.READY:
            self._crashed_unseen.add(replica.replica_id)
        self._repairs_owed += 1
        for req in replica.kill():
            self._retry_or_fail(req)
        self._end_life(replica, cause)
        detection = self.faults.detection_s if self.faults is not None else 0.0
        self.env.timeout(detection).callbacks.append(lambda _: self._on_detected(replica))

    def _on_detected(self, replica: Replica) -> None:
        self._unroute(replica)
        if replica.replica_id not in self._crashed_unseen:
            return  # it had already left the count (draining)
        self._crashed_unseen.discard(replica.replica_id)
        if self.faults is not None and not self.faults.replace:
            self.target -= 1
        self.reconcile()

    def notice(self, replica: Replica, notice_s: float, cause: str) -> None:
        """replica will be taken away in notice_s: it stops taking requests now and a replacement starts."""
        if replica.state != ReplicaState.READY:
            return
        self.events.append((self.env.now, "notice", f"replica {replica.replica_id}: {cause}, {notice_s:g} s"))
        self._unroute(replica)
        replica.drain()
        if self.faults is not None and not self.faults.replace:
            self.target -= 1
        self.reconcile()
        self.env.timeout(notice_s).callbacks.append(lambda _: self._take_away(replica, cause))

    def _take_away(self, replica: Replica, cause: str) -> None:
        if replica.is_up:
            for req in replica.kill():
                self._retry_or_fail(req)
            self._end_life(replica, cause)

    def _host_members(self, host: Host) -> tuple[list[Replica], list[Launch]]:
        replicas = [m for m in host.members if isinstance(m, Replica)]
        launches = [launch for launch in self.launches if launch.host is host]
        return sorted(replicas, key=lambda r: r.replica_id), launches

    def crash_host(self, host: Host, cause: str) -> None:
        self._lose_host(host, lambda replica: self.crash(replica, cause), cause)

    def notice_host(self, host: Host, notice_s: float, cause: str) -> None:
        self._lose_host(host, lambda replica: self.notice(replica, notice_s, cause), cause)

    def _lose_host(self, host: Host, lose_replica, cause: str) -> None:
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

    def _start_host_faults(self, host: Host) -> None:
        faults = self.faults
        if faults is None:
            return
        env, rng = self.env, self.fault_rng
        if faults.host_failures is not None:
            ttf = time_to_failure_s(faults.host_failures, 1, rng)
            env.timeout(ttf).callbacks.append(lambda _: self.crash_host(host, "host failure"))
        for name, process in (("preemption", faults.preemption), ("maintenance", faults.maintenance)):
            if process is not None:
                at = float(rng.exponential(process.mean_interval_h * HOUR_S))
                env.timeout(at).callbacks.append(
                    lambda _, p=process, n=name: self.notice_host(host, p.notice_s, n)
                )

    def _schedule_injected(self) -> None:
        if self.faults is None:
            return
        for fault in self.faults.inject:
            self.env.timeout(fault.at_s).callbacks.append(lambda _, f=fault: self._inject(f))

    def _inject(self, fault) -> None:
        cause = f"injected {fault.kind}"
        if fault.target == "host":
            if fault.index < len(self.hosts.hosts):
                host = self.hosts.hosts[fault.index]
                if fault.kind == "crash":
                    self.crash_host(host, cause)
                else:
                    self.notice_host(host, fault.notice_s, cause)
            return
        if fault.index < len(self.replicas):
            replica = self.replicas[fault.index]
            if fault.kind == "crash":
                self.crash(replica, cause)
            else:
                self.notice(replica, fault.notice_s, cause)

    # ---- end of run ---------------------------------------------------------------------------------------
    def capacity_seconds(self, end_s: float) -> float:
        """Replica-seconds of capacity held (launch to stop), cold starts included, up to end_s."""
        lives = [*self.lives, *self.ended_launches, *self.launch_lives.values()]
        return sum((life.ended_s if life.ended_s is not None else end_s) - life.started_s for life in lives)
