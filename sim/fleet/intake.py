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

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import simpy

from sim.fleet.router import Router
from sim.fleet.settings import FleetSettings
from sim.replica.replica import Replica, ReplicaState
from sim.replica.request import RequestState, Status

REJECT_REPLICA = "rejected: replica queue full (HTTP 503)"
REJECT_FLEET = "rejected: fleet queue full (HTTP 429)"
TOO_LONG = "prompt longer than max_model_len"
TIMEOUT = "timeout"
LOST = "replica failure: retry budget spent"


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
    def num_requests(self) -> int: ...


class Replicas(Protocol):
    """What intake needs of the replica controller."""

    @property
    def routable(self) -> Sequence[Replica]: ...

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
    ):
        self.env = env
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
        self.next_dispatch_s = 0.0  # when the release process next routes a request (inf when done)
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
        timer starts inside the semaphore)."""
        env = self.env
        arrival = self.workload.arrival_s.tolist()
        prompt = self.workload.prompt_tokens.tolist()
        output = self.workload.output_tokens.tolist()
        max_len = self.settings.max_model_len
        delay = self.settings.api_overhead_s
        cap = self.settings.max_concurrency
        released_at = -math.inf
        per_token = self.settings.tokenize_s_per_token
        tokenizer_free = -math.inf  # when the tokenizer thread is next idle
        for i, t in enumerate(arrival):
            sent = t
            if cap is not None:
                if t > env.now:
                    self.next_dispatch_s = t
                    yield env.timeout(t - env.now)
                if self.num_in_flight >= cap:
                    self.next_dispatch_s = math.inf  # the next send follows an ending, at a step's end
                    self._slot_freed = env.event()
                    yield self._slot_freed
                sent = max(t, env.now)  # later than its arrival if it waited for a client
                if released_at == env.now:
                    # Clients sending at one instant reach the engine one after another (the server's front
                    # end takes them in turn): an idle engine starts its step with the first, not all.
                    self.next_dispatch_s = env.now
                    yield env.timeout(0)
                released_at = env.now
            reach = sent + delay
            if per_token:  # the server's one tokenizer thread, first come first served
                tokenized = max(sent, tokenizer_free) + prompt[i] * per_token
                tokenizer_free = tokenized
                reach = tokenized + delay
            if reach > env.now:
                wait = reach - env.now
                self.next_dispatch_s = env.now + wait  # the float SimPy will give the event
                yield env.timeout(wait)
            # vLLM caps the output at max_model_len - prompt and rejects prompts that leave no room (HTTP 400).
            req = RequestState(i, sent, prompt[i], min(output[i], max_len - prompt[i]))
            self.requests.append(req)
            self.num_in_flight += 1
            if prompt[i] >= max_len:
                self.fail(req, TOO_LONG, end_s=t)
                continue
            self.dispatch(req)
        self.next_dispatch_s = math.inf

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
        candidates = self.replicas.routable
        if not candidates:
            self._hold(req)
            return
        session = int(self.sessions[req.req_id]) if self.sessions is not None else -1
        avoid = self._avoid.pop(req.req_id, None)
        if avoid is not None and len(candidates) > 1:
            candidates = [r for r in candidates if r.replica_id != avoid] or candidates
        replica = self.router.choose(candidates, session)
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

    def fail(self, req: RequestState, reason: str, end_s: float | None = None) -> None:
        req.status = Status.FAILED
        req.fail_reason = reason
        req.end_s = self.env.now if end_s is None else end_s
        self.ended([req])

    def ended(self, reqs: list[RequestState]) -> None:
        """Requests that completed or failed (replicas report theirs here)."""
        self.num_ended += len(reqs)
        self.num_in_flight -= len(reqs)
        if self._slot_freed is not None:
            self._slot_freed.succeed()
            self._slot_freed = None
        if self.num_ended >= self.workload.num_requests and not self.all_ended.triggered:
            self.all_ended.succeed()
