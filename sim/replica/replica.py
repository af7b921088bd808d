"""The SimPy process of one replica: at most one event per engine step, never one per token.

Each step: drop requests whose client gave up, ask the scheduler for a plan, price it with the step-cost
model, wait that long in simulated time, then apply the result. A token streams out at the end of the step
that produced it.

Event skipping: when the next steps are pure decode steps (nothing prefilling or waiting, nobody finishing
before the last of them, KV blocks to spare) and no reader looks at this replica before they end -- the fleet's quiet_until(): no
sampler or autoscaler reading, and no client of this replica gives up -- the replica prices them one by
one, makes their plans (KV blocks), waits once to the exact end time of the last and applies them together.
A request routed here in the meantime *truncates* the run: the steps that had not started when it arrived
are taken back (blocks freed, pricing retracted) and the run ends after the step in flight, exactly where
the one-event-per-step path would first see the request. The results are identical to the reference path
(tests compare them request by request); only the number of SimPy events changes.

A replica's life: READY (routable) -> DRAINING (finishes what it holds, takes nothing new) -> STOPPED, or
-> CRASHED at any time (``kill``): the step in flight is lost and the fleet gets back every request the
replica held, to retry or fail.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_left
from collections.abc import Callable
from enum import IntEnum

import numpy as np
import simpy

from sim.cost.base import StepCost, StepCostModel
from sim.replica.request import RequestState, Status
from sim.replica.scheduler import Scheduler, SchedulerConfig

MAX_RUN_STEPS = 256  # longest pure decode run priced at once (bounds the look-ahead work)
TRUNCATE = "truncate run"
MIN_RUN_LOOKAHEAD = 4  # below this, a run's bookkeeping costs more than the events it saves
VECTOR_MIN_STEPS = 32  # below this, numpy's per-call overhead costs more than pricing step by step


def _exact_delay(now: float, end: float) -> float:
    """The delay SimPy turns into exactly `end` (it computes now + delay): the end time the steps reached
    one by one, so every later event happens at bit-identical times to the one-event-per-step path."""
    delay = end - now
    while now + delay < end:
        delay = math.nextafter(delay, math.inf)
    while now + delay > end:
        delay = math.nextafter(delay, -math.inf)
    return delay


class DecodeRun:
    """A run of pure decode steps in flight: when it started, and per step its end time, its cost parts and
    its KV blocks (made at the run's start, as the plans would have been made at each step's start)."""

    __slots__ = (
        "start",
        "ends",
        "seconds",
        "compute",
        "memory",
        "comm",
        "overhead",
        "stall",
        "padding",
        "needs",
    )

    def __init__(self, start: float):
        self.start = start
        self.ends: list[float] = []
        self.seconds: list[float] = []
        self.compute: list[float] = []
        self.memory: list[float] = []
        self.comm: list[float] = []
        self.overhead: list[float] = []
        self.stall: list[float] = []
        self.padding: list[int] = []
        self.needs: list[int] = []

    def __len__(self) -> int:
        return len(self.ends)

    def add(self, cost: StepCost, end: float) -> None:
        self.ends.append(end)
        self.seconds.append(cost.seconds)
        self.compute.append(cost.compute_s)
        self.memory.append(cost.memory_s)
        self.comm.append(cost.communication_s)
        self.overhead.append(cost.overhead_s)
        self.stall.append(cost.compile_stall_s)
        self.padding.append(cost.padding_tokens)

    def keep(self, k: int) -> None:
        for column in (
            self.ends,
            self.seconds,
            self.compute,
            self.memory,
            self.comm,
            self.overhead,
            self.stall,
            self.padding,
            self.needs,
        ):
            del column[k:]

    def num_started_before(self, t: float) -> int:
        """Steps whose start time is before t (the first always counts: it started when the run did);
        step j > 0 starts when step j - 1 ends."""
        return 1 + bisect_left(self.ends, t, 0, len(self.ends) - 1)


class ReplicaState(IntEnum):
    READY = 0
    DRAINING = 1
    STOPPED = 2
    CRASHED = 3


class ReplicaStats:
    """Totals over the run, for the report."""

    __slots__ = (
        "num_steps",
        "busy_s",
        "compute_bound_steps",
        "compute_s",
        "memory_s",
        "communication_s",
        "overhead_s",
        "num_tokens",
        "peak_kv_blocks",
        "padding_tokens",
        "compile_stalls",
        "compile_stall_s",
    )

    def __init__(self) -> None:
        self.num_steps = 0
        self.busy_s = 0.0
        self.compute_bound_steps = 0
        self.compute_s = self.memory_s = self.communication_s = self.overhead_s = 0.0
        self.num_tokens = 0
        self.peak_kv_blocks = 0
        self.padding_tokens = 0  # dummy tokens computed to reach compiled shapes
        self.compile_stalls = 0  # steps that compiled a shape on the spot
        self.compile_stall_s = 0.0


class Replica:
    def __init__(
        self,
        env: simpy.Environment,
        replica_id: int,
        config: SchedulerConfig,
        cost_model: StepCostModel,
        *,
        request_timeout_s: float,
        on_finished: Callable[[list[RequestState]], None],
        on_idle: Callable[[Replica], None] | None = None,
        on_first_token: Callable[[RequestState], None] | None = None,
        quiet_until: Callable[[], float] | None = None,
    ):
        """on_idle: called when a DRAINING replica has nothing left; on_first_token: called as each request
        gets its first token (for autoscalers that watch TTFT); quiet_until: the time before which nothing
        outside reads or changes this replica (None: no event skipping, one event per step)."""
        self.env = env
        self.replica_id = replica_id
        self.scheduler = Scheduler(config)
        self.cost_model = cost_model
        self.request_timeout_s = request_timeout_s
        self.on_finished = on_finished
        self.on_idle = on_idle
        self.on_first_token = on_first_token
        self.quiet_until = quiet_until
        self._run_in_flight: DecodeRun | None = None
        self.outstanding = 0  # requests submitted and not ended
        self._lookahead = 8  # steps priced ahead: follows twice the recent kept run length (see _decode_run)
        self.state = ReplicaState.READY
        self.host = None  # the Host it runs on (fleet placement), if any
        # End time of step k (k = the scheduler's step counter), as packed doubles: 8 bytes a step instead
        # of a list slot plus a float object (~32 bytes); a million-request fleet takes 15M steps.
        self.step_end_s = array("d")
        self.stats = ReplicaStats()
        self._deadlines: list[tuple[float, int, RequestState]] = []
        self._wake: simpy.Event | None = None
        self.process = env.process(self._run())

    @property
    def num_outstanding(self) -> int:
        """Waiting + running requests: a counter (submitted - ended) kept in step with the scheduler, so a
        least-outstanding router reads one attribute per replica (tests check it against the scheduler)."""
        return self.outstanding

    @property
    def kv_usage(self) -> float:
        kv = self.scheduler.kv
        used = kv.num_used_blocks
        run = self._run_in_flight
        if run is not None:  # blocks of steps that have not started yet were not planned yet
            used -= sum(run.needs[run.num_started_before(self.env.now) :])
        return used / kv.num_blocks if kv.num_blocks else 0.0

    @property
    def is_up(self) -> bool:
        """Still holds requests it is working on (ready or draining)."""
        return self.state <= ReplicaState.DRAINING

    def drain(self) -> None:
        """Take no new requests; stop once empty."""
        if self.state == ReplicaState.READY:
            self.state = ReplicaState.DRAINING
            self._poke()

    def kill(self) -> list[RequestState]:
        """Crash now: the step in flight is lost. Returns the requests it held (their state mid-flight), for
        the fleet to retry or fail; the replica itself keeps nothing."""
        if not self.is_up:
            return []
        self.state = ReplicaState.CRASHED
        sched = self.scheduler
        held = list(sched.running.values()) + [r for r in sched.waiting if r.status == Status.WAITING]
        self._deadlines.clear()
        self._run_in_flight = None  # its plans died with it
        self.outstanding = 0
        # A dead server holds nothing: its connections are closed, so a load balancer counting active
        # requests sees zero here until the crash is detected.
        self.scheduler = Scheduler(sched.config)
        if self.process.is_alive:
            self.process.interrupt("crash")
        return held

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def submit(self, req: RequestState) -> None:
        req.replica_id = self.replica_id
        self.outstanding += 1
        self.scheduler.add_request(req)
        heapq.heappush(self._deadlines, (req.arrival_s + self.request_timeout_s, req.req_id, req))
        if self._run_in_flight is not None:
            self._truncate_run(self.env.now)
        self._poke()

    def _truncate_run(self, now: float) -> None:
        """A request arrived mid-run: take back the steps that had not started (the reference path plans the
        next step only after the one in flight, and that plan sees the request)."""
        run = self._run_in_flight
        keep = run.num_started_before(now)
        if keep == len(run):
            return
        self._retract(run.comm[keep:], run.stall[keep:])
        self.scheduler.kv.free(sum(run.needs[keep:]))
        run.keep(keep)
        self.process.interrupt(TRUNCATE)

    def _next_deadline(self) -> float:
        """The earliest client deadline of a request still held here. Entries of requests that ended are
        dropped lazily from the top of the heap: left there, they would cut decode runs at times when
        nothing can happen."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][2].status >= Status.FINISHED:
            heapq.heappop(deadlines)
        return deadlines[0][0] if deadlines else math.inf

    def _expire(self, now: float) -> None:
        """Abort requests whose client timed out; only between steps, so no plan is in flight."""
        deadlines = self._deadlines
        aborted = []
        while deadlines and deadlines[0][0] <= now:
            _, _, req = heapq.heappop(deadlines)
            if req.status not in (Status.FINISHED, Status.FAILED):
                self.scheduler.abort(req, "timeout", now)
                aborted.append(req)
        if aborted:
            self.outstanding -= len(aborted)
            self.on_finished(aborted)

    def _retract(self, comm: list[float], stall: list[float]) -> None:
        """Take back priced steps that will not be taken, from cost models that keep state per step."""
        retract = getattr(self.cost_model, "retract", None)
        if retract is not None and comm:
            retract(comm, stall)

    def _price_run(self, run: DecodeRun, max_steps: int, bound: float) -> None:
        """Price up to max_steps decode steps from run.start, keeping those that end before bound (the first
        always); a step priced and not kept is retracted, so the cost model is left as if never asked.
        Cost models that price whole runs do it with the scalar path's arithmetic in its order (plain floats
        for short runs, numpy for long ones), so every number is bit-identical; others go step by step."""
        sched = self.scheduler
        price_run = getattr(self.cost_model, "decode_run_costs", None)
        if price_run is not None:
            n, base = sched.num_decode, sched.decode_computed_sum
            if max_steps >= VECTOR_MIN_STEPS:
                contexts = base + n * np.arange(1, max_steps + 1, dtype=np.int64)
            else:
                contexts = [base + n * (j + 1) for j in range(max_steps)]
            costs = price_run(n, contexts)
            if costs is not None:
                seconds, compute, memory, comm, overhead, stall, padding = costs
                if isinstance(seconds, list):
                    ends, t = [], run.start
                    for x in seconds:  # sequential, as SimPy adds each step's delay
                        t += x
                        if ends and t >= bound:
                            break
                        ends.append(t)
                    k = len(ends)
                else:
                    all_ends = np.cumsum(np.concatenate(([run.start], seconds)))[1:]  # sequential
                    k = max(1, int(np.searchsorted(all_ends, bound, side="left")))
                    ends = all_ends[:k].tolist()
                    seconds, compute, memory = seconds.tolist(), compute.tolist(), memory.tolist()
                    comm, overhead, stall = comm.tolist(), overhead.tolist(), stall.tolist()
                run.ends = ends
                run.seconds, run.compute, run.memory = seconds[:k], compute[:k], memory[:k]
                run.comm, run.overhead, run.stall = comm[:k], overhead[:k], stall[:k]
                run.padding = [padding] * k
                self._retract(comm[k:], stall[k:])
                return
        step_cost = self.cost_model.step_cost
        t = run.start
        for j in range(max_steps):
            if j and t >= bound:
                break
            cost = step_cost(sched.decode_batch(j))
            end = t + cost.seconds
            if j and end >= bound:  # the first step is taken whatever happens after it starts
                self._retract([cost.communication_s], [cost.compile_stall_s])
                break
            run.add(cost, end)
            t = end

    def _decode_run(self, max_steps: int):
        """Up to max_steps pure decode steps as one SimPy event (see the module docstring)."""
        env, sched, stats = self.env, self.scheduler, self.stats
        bound = min(self.quiet_until(), self._next_deadline())
        run = DecodeRun(env.now)
        self._price_run(run, max_steps, bound)
        run.needs = sched.allocate_decode_run(len(run))
        used = sched.kv.num_used_blocks
        if used > stats.peak_kv_blocks:
            stats.peak_kv_blocks = used
        self._run_in_flight = run
        try:
            yield env.timeout(_exact_delay(run.start, run.ends[-1]))
        except simpy.Interrupt as interrupt:
            if interrupt.cause != TRUNCATE:
                raise
            yield env.timeout(_exact_delay(env.now, run.ends[-1]))  # the end of the step in flight
        self._run_in_flight = None
        k = len(run)
        # Price about twice what recent runs kept: long runs when nothing interrupts, little waste when
        # requests keep truncating them.
        self._lookahead = min(MAX_RUN_STEPS, (self._lookahead + 2 * k) // 2)
        self.step_end_s.extend(run.ends)
        stats.num_steps += k
        stats.num_tokens += k * sched.num_decode
        # Float totals add step by step, in order, exactly as the one-event-per-step path adds them.
        busy, compute, memory = stats.busy_s, stats.compute_s, stats.memory_s
        communication, overhead, compute_bound = stats.communication_s, stats.overhead_s, 0
        for s, c, m, x, o in zip(run.seconds, run.compute, run.memory, run.comm, run.overhead, strict=True):
            busy += s
            compute += c
            memory += m
            communication += x
            overhead += o
            if c > m:
                compute_bound += 1
        stats.busy_s, stats.compute_s, stats.memory_s = busy, compute, memory
        stats.communication_s, stats.overhead_s = communication, overhead
        stats.compute_bound_steps += compute_bound
        stats.padding_tokens += sum(run.padding)
        for x in run.stall:
            if x:
                stats.compile_stalls += 1
                stats.compile_stall_s += x
        finished = sched.commit_decode_run(k, env.now)
        if finished:
            self.outstanding -= len(finished)
            self.on_finished(finished)

    def _run(self):
        try:
            yield from self._steps()
        except simpy.Interrupt:
            return  # crashed: kill() handed the requests back

    def _steps(self):
        env, sched, stats = self.env, self.scheduler, self.stats
        step_cost = self.cost_model.step_cost
        step_end_s = self.step_end_s
        while True:
            if self._next_deadline() <= env.now:
                self._expire(env.now)
            if not sched.has_work():
                if self.state == ReplicaState.DRAINING:
                    self.state = ReplicaState.STOPPED
                    if self.on_idle is not None:
                        self.on_idle(self)
                    return
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            if self.quiet_until is not None:
                if self._lookahead >= MIN_RUN_LOOKAHEAD:
                    run = sched.decode_run_length(self._lookahead)
                    if run >= 2:
                        yield from self._decode_run(run)
                        continue
                else:
                    self._lookahead += 1  # runs kept being cut short: step normally a while, then try again
            plan = sched.schedule()
            batch = plan.batch
            if batch.num_decode_seqs == 0 and not batch.prefill_new_tokens:
                # Everything was preempted this step (no admission in such a step): an empty step, no time.
                sched.update_from_step(plan, env.now)
                step_end_s.append(env.now)
                continue
            cost = step_cost(batch)
            used = sched.kv.num_used_blocks
            if used > stats.peak_kv_blocks:
                stats.peak_kv_blocks = used
            yield env.timeout(cost.seconds)
            finished = sched.update_from_step(plan, env.now)
            step_end_s.append(env.now)
            if self.on_first_token is not None:
                for req in plan.prefill_reqs:
                    if req.first_token_s == env.now and req.num_output_tokens == 1:
                        self.on_first_token(req)
            stats.num_steps += 1
            stats.busy_s += cost.seconds
            stats.num_tokens += batch.num_tokens
            stats.compute_s += cost.compute_s
            stats.memory_s += cost.memory_s
            stats.communication_s += cost.communication_s
            stats.overhead_s += cost.overhead_s
            stats.padding_tokens += cost.padding_tokens
            if cost.compile_stall_s:
                stats.compile_stalls += 1
                stats.compile_stall_s += cost.compile_stall_s
            if cost.compute_s > cost.memory_s:
                stats.compute_bound_steps += 1
            if finished:
                self.outstanding -= len(finished)
                self.on_finished(finished)
