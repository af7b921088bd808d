"""Request intake: every request from its arrival to a replica, or to a failure with a reason.

A request is released at its arrival time (plus the server's per-request API overhead), checked against
`max_model_len` (vLLM refuses a prompt that leaves no room, HTTP 400, and caps the output to fit), then
dispatched: admission caps (fleet-wide and per replica, HTTP 429/503), the router's choice among routable
replicas, or the hold queue when none is routable (as Knative's activator holds requests during a cold
start). A replica that drops requests (crash, removal) hands them back here to be retried with Envoy's
back-off or failed. Nothing vanishes: every request ends completed or failed, and ``all_ended`` fires when
the last one does.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import simpy

from sim.fleet.disaggregation import OnePhase, RequestPhases
from sim.fleet.router import RouteQuery, Router
from sim.fleet.settings import FleetSettings
from sim.replica.replica import Replica, ReplicaState
from sim.replica.request import RequestState, Status

REJECT_REPLICA = "rejected: replica queue full (HTTP 503)"
REJECT_FLEET = "rejected: fleet queue full (HTTP 429)"
TOO_LONG = "prompt longer than max_model_len"
TIMEOUT = "timeout"
LOST = "replica failure: retry budget spent"
CONVERSATION_ENDED = "an earlier turn of its conversation failed"


def _next_turns(follows: np.ndarray | None) -> dict[int, int] | None:
    """request -> the turn that follows it in its conversation."""
    if follows is None:
        return None
    return {int(prev): i for i, prev in enumerate(follows.tolist()) if prev >= 0}


class BlockHashes(Protocol):
    """The requests' tokens as the chained hashes of their full blocks (sim/traffic/identity.py)."""

    def block_hashes(self, index: int, block_size: int) -> list[int]: ...


class RequestStream(Protocol):
    """The requests to release, as columns (sim/traffic/workload.py's Workload is one)."""

    @property
    def arrival_s(self) -> np.ndarray: ...  # f64[num_requests], non-decreasing

    @property
    def prompt_tokens(self) -> np.ndarray: ...  # i64[num_requests]

    @property
    def output_tokens(self) -> np.ndarray: ...  # i64[num_requests], requested

    @property
    def session_id(self) -> np.ndarray | None: ...  # i64[num_requests] when the workload has sessions

    @property
    def identity(self) -> BlockHashes | None: ...  # the requests' tokens as block hashes (prefix caching)

    @property
    def follows(self) -> np.ndarray | None: ...  # i64: the conversation turn a request follows, -1 for none

    @property
    def think_s(self) -> np.ndarray | None: ...  # f64: think time before a follow-up turn

    @property
    def num_requests(self) -> int: ...


class Replicas(Protocol):
    """What intake needs of the replica controller."""

    @property
    def routable(self) -> Sequence[Replica]: ...

    def routable_in(self, pool: int | None) -> Sequence[Replica]:
        """The routable replicas of one pool (None: of every pool)."""
        ...

    @property
    def up(self) -> list[Replica]: ...

    def refused(self, replica: Replica) -> None: ...


class RequestIntake:
    def __init__(
        self,
        env: simpy.Environment,
        settings: FleetSettings,
        workload: RequestStream,
        router: Router,
        replicas: Replicas,
        backoff_rng: np.random.Generator,
        phases: RequestPhases | None = None,
    ):
        """phases: which pool a request goes to, and hand-offs between pools (default: aggregated serving)."""
        self.env = env
        self.phases = phases if phases is not None else OnePhase()
        self.settings = settings
        self.workload = workload
        self.router = router
        self.replicas = replicas
        self.backoff_rng = backoff_rng
        self.sessions = workload.session_id
        self.requests: list[RequestState] = []  # every request released so far, by req_id
        self.held: dict[int, RequestState] = {}  # the hold queue (no routable replica), in order
        self.num_retries = 0
        self.retries_pending = 0  # retries waiting out their back-off
        self._next_release_s = 0.0  # when the release process next routes a request (inf when done)
        self._follow_ups: list[float] = []  # when pending conversation turns will be sent or reach the engine
        self._prompt = workload.prompt_tokens.tolist()
        self._output = workload.output_tokens.tolist()
        self._tokenizer_free = -math.inf  # when the server's tokenizer thread is next idle
        caching = settings.enable_prefix_caching
        self._identity = workload.identity if caching else None
        self._next_turn = _next_turns(workload.follows)
        self._avoid: dict[int, int] = {}  # req_id -> replica a pending retry must not go back to
        self.num_ended = 0
        self.num_in_flight = 0  # sent and not yet ended (the clients' concurrency cap counts these)
        self._slot_freed: simpy.Event | None = None  # the release process waits on it at the cap
        self.all_ended = env.event()
        if workload.num_requests == 0:
            self.all_ended.succeed()
        env.process(self._release())

    # ---- arrival ------------------------------------------------------------------------------------------
    def _release(self):
        """Release requests at their arrival times, after the server's tokenizer (one thread: requests queue for
        it, each taking its prompt's tokens x tokenize_s_per_token) and the API overhead. With the clients' cap
        (`vllm bench serve --max-concurrency`), a request that arrives while the cap is reached waits for a
        request to end and is sent then: its latencies count from that moment, as the harness's do (its
        timer starts inside the semaphore). A conversation's later turns are not released here: each is sent
        a think time after the turn before it ends (see ended())."""
        env = self.env
        arrival = self.workload.arrival_s.tolist()
        follows = self.workload.follows
        cap = self.settings.max_concurrency
        released_at = -math.inf
        for i, t in enumerate(arrival):
            if follows is not None and follows[i] >= 0:
                continue
            sent = t
            if cap is not None:
                if t > env.now:
                    self._next_release_s = t
                    yield env.timeout(t - env.now)
                if self.num_in_flight >= cap:
                    self._next_release_s = math.inf  # the next send follows an ending, at a step's end
                    self._slot_freed = env.event()
                    yield self._slot_freed
                sent = max(t, env.now)  # later than its arrival if it waited for a client
                if released_at == env.now:
                    # Clients sending at one instant reach the engine one after another (the server's front
                    # end takes them in turn): an idle engine starts its step with the first, not all.
                    self._next_release_s = env.now
                    yield env.timeout(0)
                released_at = env.now
            reach = self._reach(i, sent)
            if reach > env.now:
                self._next_release_s = reach  # the float SimPy will give the event
                yield env.timeout(reach - env.now)
            self._send(i, sent)
        self._next_release_s = math.inf

    def _reach(self, i: int, sent: float) -> float:
        """When request i, sent at `sent`, reaches the engine: the server's one tokenizer thread (first come,
        first served) and then the per-request API overhead."""
        per_token = self.settings.tokenize_s_per_token
        reach = sent
        if per_token:
            reach = max(sent, self._tokenizer_free) + self._prompt[i] * per_token
            self._tokenizer_free = reach
        return reach + self.settings.api_overhead_s

    def _send(self, i: int, sent: float) -> None:
        """Create request i (sent by its client at `sent`) and route it."""
        prompt, max_len = self._prompt[i], self.settings.max_model_len
        # vLLM caps the output at max_model_len - prompt and rejects prompts that leave no room (HTTP 400).
        req = RequestState(i, sent, prompt, min(self._output[i], max_len - prompt))
        self.requests.append(req)
        self.num_in_flight += 1
        if self._identity is not None:
            req.block_hashes = self._identity.block_hashes(i, self.settings.block_size)
        if prompt >= max_len:
            self.fail(req, TOO_LONG, end_s=sent)
            return
        self.phases.begin(req)
        self.dispatch(req)

    def _follow_up(self, i: int, ended_s: float):
        """The next turn of a conversation: its user thinks, then sends it."""
        sent = ended_s + float(self.workload.think_s[i]) if self.workload.think_s is not None else ended_s
        heapq.heappush(self._follow_ups, sent)
        if sent > self.env.now:
            yield self.env.timeout(sent - self.env.now)
        reach = self._reach(i, sent)
        heapq.heappop(self._follow_ups)
        if reach > self.env.now:
            heapq.heappush(self._follow_ups, reach)
            yield self.env.timeout(reach - self.env.now)
            heapq.heappop(self._follow_ups)
        self._send(i, sent)

    @property
    def next_dispatch_s(self) -> float:
        """When the intake next routes a request on its own (inf when nothing is scheduled): the release
        process's next arrival or a conversation's next turn."""
        if self._follow_ups:
            return min(self._next_release_s, self._follow_ups[0])
        return self._next_release_s

    # ---- routing ------------------------------------------------------------------------------------------
    def dispatch(self, req: RequestState) -> None:
        env, settings = self.env, self.settings
        if env.now >= req.arrival_s + settings.request_timeout_s:
            self.fail(req, TIMEOUT)
            return
        cap = settings.admission.max_fleet_waiting
        if cap is not None and sum(r.scheduler.num_waiting for r in self.replicas.up) + len(self.held) >= cap:
            self.fail(req, REJECT_FLEET)
            return
        candidates = self.replicas.routable_in(self.phases.pool_for(req))
        if not candidates:
            self._hold(req)
            return
        session = int(self.sessions[req.req_id]) if self.sessions is not None else -1
        query = RouteQuery(session, req.block_hashes, req.num_tokens - req.num_computed_tokens)
        avoid = self._avoid.pop(req.req_id, None)
        if avoid is not None and len(candidates) > 1:
            candidates = [r for r in candidates if r.replica_id != avoid] or candidates
        replica = self.router.choose(candidates, query)
        if replica.state == ReplicaState.CRASHED:  # not detected yet: the connection is refused
            req.replica_id = replica.replica_id
            self.replicas.refused(replica)
            self.retry_or_fail(req)
            return
        cap = settings.admission.max_waiting_per_replica
        if cap is not None and replica.scheduler.num_waiting >= cap:
            self.fail(req, REJECT_REPLICA)
            return
        replica.submit(req)

    def _hold(self, req: RequestState) -> None:
        """No replica to send to: hold the request until one is ready or its client gives up."""
        self.held[req.req_id] = req
        self.env.process(self._hold_until_deadline(req))

    def _hold_until_deadline(self, req: RequestState):
        yield self.env.timeout(max(0.0, req.arrival_s + self.settings.request_timeout_s - self.env.now))
        if self.held.pop(req.req_id, None) is not None:
            self.fail(req, TIMEOUT)

    def flush_held(self) -> None:
        """A replica became routable: dispatch what the hold queue kept, in order."""
        if not self.held:
            return
        held, self.held = list(self.held.values()), {}
        for req in held:
            self.dispatch(req)

    # ---- retries and endings ------------------------------------------------------------------------------
    def retry_or_fail(self, req: RequestState) -> None:
        """A replica dropped req: start it over elsewhere after a back-off, or fail it."""
        retry = self.settings.retry
        if req.num_attempts - 1 >= retry.budget:
            self.fail(req, LOST)
            return
        if retry.avoid_previous_replica and req.replica_id >= 0:
            self._avoid[req.req_id] = req.replica_id
        req.restart()
        self.phases.restart(req)
        self.num_retries += 1
        attempt = req.num_attempts - 1
        ceiling = min(retry.backoff_max_s, retry.backoff_base_s * (2**attempt - 1))
        delay = float(self.backoff_rng.uniform(0.0, ceiling)) if ceiling > 0 else 0.0
        self.retries_pending += 1
        self.env.process(self._retry_after(req, delay))

    def _retry_after(self, req: RequestState, delay: float):
        yield self.env.timeout(delay)
        self.retries_pending -= 1
        self.dispatch(req)

    def _abandon(self, i: int, end_s: float) -> None:
        """A turn whose conversation ended early: recorded as failed, never sent (and so its successors)."""
        req = RequestState(i, end_s, self._prompt[i], self._output[i])
        self.requests.append(req)
        self.num_in_flight += 1
        self.fail(req, CONVERSATION_ENDED, end_s=end_s)

    def fail(self, req: RequestState, reason: str, end_s: float | None = None) -> None:
        req.status = Status.FAILED
        req.fail_reason = reason
        req.end_s = self.env.now if end_s is None else end_s
        self.ended([req])

    def ended(self, reqs: list[RequestState]) -> None:
        """Requests that completed or failed (replicas report theirs here). A conversation goes on with its
        next turn after a completed one; after a failed one its remaining turns fail too (never sent). A
        request that finished its prefill on a disaggregated fleet is not over: it goes on to the decode pool."""
        if self.phases.splits:
            handed = [r for r in reqs if r.status == Status.FINISHED and self.phases.hands_off(r)]
            for req in handed:
                self.env.process(self._hand_off(req))
            if handed:
                reqs = [r for r in reqs if r not in handed]
                if not reqs:
                    return
        self.num_ended += len(reqs)
        if self._next_turn is not None:
            for req in reqs:
                nxt = self._next_turn.get(req.req_id)
                if nxt is None:
                    continue
                if req.status == Status.FINISHED:
                    self.env.process(self._follow_up(nxt, self.env.now))
                else:
                    self._abandon(nxt, req.end_s)
        self.num_in_flight -= len(reqs)
        if self._slot_freed is not None:
            self._slot_freed.succeed()
            self._slot_freed = None
        if self.num_ended >= self.workload.num_requests and not self.all_ended.triggered:
            self.all_ended.succeed()

    def _hand_off(self, req: RequestState):
        """A prefilled request's KV crosses to the decode pool; then it is routed there."""
        prefill_end_s = self.env.now
        transfer_s = self.phases.hand_off_s(req)
        if transfer_s > 0:
            yield self.env.timeout(transfer_s)
        self.phases.hand_off(req, prefill_end_s, transfer_s)
        self.dispatch(req)
