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
from bisect import bisect_left
from collections.abc import Callable
from enum import IntEnum

import numpy as np
import simpy

from sim.cost.base import IntColumn, StepColumns, StepCostModel
from sim.replica.ledger import ReplicaStats, StepLedger
from sim.replica.request import RequestState, Status
from sim.replica.scheduler import SchedulerConfig
from sim.replica.schedulers import make_scheduler

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
    """A run of pure decode steps in flight: when it started, and per step its end time, its cost and its
    KV blocks (made at the run's start, as the plans would have been made at each step's start). Its steps
    are the first len(ends) of `steps`."""

    __slots__ = ("start", "ends", "steps", "needs")

    def __init__(self, start: float, ends: list[float], steps: StepColumns):
        self.start = start
        self.ends = ends
        self.steps = steps
        self.needs: list[int] = []

    def __len__(self) -> int:
        return len(self.ends)

    def keep(self, k: int) -> StepColumns:
        """Keep the first k steps; returns the steps dropped (to be retracted). The kept steps are the
        first len(ends) of `steps` (steps may hold more: those priced and retracted at the start)."""
        dropped = self.steps.slice(k, len(self.ends))
        del self.ends[k:]
        del self.needs[k:]
        return dropped

    def num_started_before(self, t: float) -> int:
        """Steps whose start time is before t (the first always counts: it started when the run did);
        step j > 0 starts when step j - 1 ends."""
        return 1 + bisect_left(self.ends, t, 0, len(self.ends) - 1)


class ReplicaState(IntEnum):
    READY = 0
    DRAINING = 1
    STOPPED = 2
    CRASHED = 3


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
        pool: int = 0,
    ):
        """on_idle: called when a DRAINING replica has nothing left; on_first_token: called as each request
        gets its first token (for autoscalers that watch TTFT); quiet_until: the time before which nothing
        outside reads or changes this replica (None: no event skipping, one event per step)."""
        self.env = env
        self.replica_id = replica_id
        self.scheduler = make_scheduler(config)
        self.cost_model = cost_model
        self.request_timeout_s = request_timeout_s
        self.on_finished = on_finished
        self.on_idle = on_idle
        self.on_first_token = on_first_token
        self.quiet_until = quiet_until
        self.pool = pool  # index of the fleet's pool this replica belongs to (0 in a one-pool fleet)
        self._run_in_flight: DecodeRun | None = None
        self.outstanding = 0  # requests submitted and not ended
        self._lookahead = 8  # steps priced ahead: follows twice the recent kept run length (see _decode_run)
        self.state = ReplicaState.READY
        self.ledger = StepLedger()  # every step taken, by either path (its end time and its cost)
        self._deadlines: list[tuple[float, int, RequestState]] = []
        self._wake: simpy.Event | None = None
        self.process = env.process(self._run())

    @property
    def num_outstanding(self) -> int:
        """Waiting + running requests: a counter (submitted - ended) kept in step with the scheduler, so a
        least-outstanding router reads one attribute per replica (tests check it against the scheduler)."""
        return self.outstanding

    def cached_prefix_blocks(self, block_hashes: list[int]) -> int:
        """How many leading blocks of a request this replica's prefix cache holds (prefix-aware routing)."""
        return self.scheduler.kv.longest_hit(block_hashes, len(block_hashes))

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
        self.scheduler = make_scheduler(sched.config)
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
        assert run is not None
        keep = run.num_started_before(now)
        if keep == len(run):
            return
        self.scheduler.kv.free(sum(run.needs[keep:]))
        dropped = run.keep(keep)
        if self.cost_model.keeps_step_state:
            self.cost_model.retract(dropped)
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

    def _price_run(self, start: float, max_steps: int, bound: float) -> DecodeRun:
        """Price up to max_steps decode steps from `start`, keeping those that end before bound (the first
        always); steps priced and not kept are retracted, so the cost model is left as if never asked.
        End times add step by step, as SimPy adds each step's delay on the reference path."""
        sched = self.scheduler
        n, base = sched.num_decode, sched.decode_computed_sum
        contexts: IntColumn
        if max_steps >= VECTOR_MIN_STEPS:
            contexts = base + n * np.arange(1, max_steps + 1, dtype=np.int64)
        else:
            contexts = [base + n * (j + 1) for j in range(max_steps)]
        steps = self.cost_model.price_decode_run(n, contexts)
        seconds = steps.seconds
        ends: list[float]
        if isinstance(seconds, list):
            ends, t = [], start
            for x in seconds:
                t += x
                if ends and t >= bound:
                    break
                ends.append(t)
        else:
            all_ends = np.cumsum(np.concatenate(([start], seconds)))[1:]  # sequential
            k = max(1, int(np.searchsorted(all_ends, bound, side="left")))
            ends = all_ends[:k].tolist()
        k = len(ends)
        if k < max_steps and self.cost_model.keeps_step_state:
            self.cost_model.retract(steps.tail(k))
        if not isinstance(seconds, list):
            steps = steps.head(k)  # as lists: the ledger and truncation work on plain floats
        return DecodeRun(start, ends, steps)

    def _decode_run(self, max_steps: int):
        """Up to max_steps pure decode steps as one SimPy event (see the module docstring)."""
        env, sched, ledger = self.env, self.scheduler, self.ledger
        assert self.quiet_until is not None  # runs are taken only with event skipping on
        bound = min(self.quiet_until(), self._next_deadline())
        run = self._price_run(env.now, max_steps, bound)
        run.needs = sched.allocate_decode_run(len(run))
        ledger.observe_kv_blocks(sched.kv.num_used_blocks)
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
        ledger.record_run(run.steps, run.ends)
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
        env, sched, ledger = self.env, self.scheduler, self.ledger
        step_cost = self.cost_model.step_cost
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
                ledger.record_empty(env.now)
                continue
            cost = step_cost(batch)
            if plan.loaded_blocks:  # KV blocks loaded back over the host link before the step can run
                load_s = plan.loaded_blocks * sched.config.load_s_per_block
                cost.seconds += load_s
                cost.communication_s += load_s
            ledger.observe_kv_blocks(sched.kv.num_used_blocks)
            yield env.timeout(cost.seconds)
            finished = sched.update_from_step(plan, env.now)
            ledger.record(cost, env.now)
            if self.on_first_token is not None:
                for req in plan.prefill_reqs:
                    if req.first_token_s == env.now and req.num_output_tokens == 1:
                        self.on_first_token(req)
            if finished:
                self.outstanding -= len(finished)
                self.on_finished(finished)

    @property
    def stats(self) -> ReplicaStats:
        return self.ledger.stats()
