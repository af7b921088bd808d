"""The workload of one run: arrival time, prompt length and output length of every request."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sim.traffic.arrivals import arrival_times
from sim.traffic.identity import TokenIdentity
from sim.traffic.lengths import sample_lengths
from sim.traffic.sessions import conversations, shared_prefix_identity
from sim.traffic.spec import TraceLengths, WorkloadSpec
from sim.traffic.trace import read_trace


@dataclass(frozen=True)
class WorkloadPlan:
    """What the traffic layer draws: the workload section and the run's bounds (sim/resolve.py makes it)."""

    spec: WorkloadSpec
    num_requests: int | None
    duration_s: float | None


@dataclass(frozen=True)
class Workload:
    arrival_s: np.ndarray  # f64[num_requests], non-decreasing (a later turn: its conversation's start)
    prompt_tokens: np.ndarray  # i64[num_requests]
    output_tokens: np.ndarray  # i64[num_requests], requested (the sim may cap them at max_model_len)
    note: str  # how the lengths were obtained, for the report
    session_id: np.ndarray | None = None  # i64[num_requests] when the workload has sessions
    identity: TokenIdentity | None = None  # the requests' tokens, for prefix caching (None: all unique)
    follows: np.ndarray | None = None  # i64: the turn this request follows in its conversation, -1 for none
    think_s: np.ndarray | None = None  # f64: the user's think time before sending a follow-up turn

    @property
    def num_requests(self) -> int:
        return len(self.arrival_s)


def build_workload(plan: WorkloadPlan, seed: int) -> Workload:
    """Draw the workload. Arrivals use ``default_rng(seed)`` itself (the harness's stream); lengths use an
    independent child stream, so changing the length distribution never moves the arrival times."""
    spec = plan.spec
    if isinstance(spec.lengths, TraceLengths):
        arrival, prompt, output = read_trace(spec.lengths.path)
        keep = np.ones(len(arrival), dtype=bool)
        if plan.duration_s is not None:
            keep &= arrival <= plan.duration_s
        idx = np.flatnonzero(keep)
        if plan.num_requests is not None:
            idx = idx[: plan.num_requests]
        return _with_sessions(
            Workload(arrival[idx], prompt[idx], output[idx], "recorded trace"), spec.sessions, seed
        )
    if spec.arrivals is None:
        raise AssertionError("workload.arrivals is required without a trace (the schema checks it)")
    arrival = arrival_times(
        spec.arrivals,
        np.random.default_rng(seed),
        num_requests=plan.num_requests,
        duration_s=plan.duration_s,
    )
    length_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    if spec.conversations is not None:
        c = conversations(arrival, spec, plan.num_requests, seed)
        return Workload(
            c.arrival_s,
            c.prompt_tokens,
            c.output_tokens,
            c.note,
            session_id=c.session_id,
            identity=c.identity,
            follows=c.follows,
            think_s=c.think_s,
        )
    prompt, output, note = sample_lengths(spec.lengths, len(arrival), length_rng, seed)
    identity = None
    if spec.prefix is not None:
        prompt, identity = shared_prefix_identity(prompt, output, spec.prefix, seed)
        note += f"; behind one of {spec.prefix.tenants} system prompts of {spec.prefix.tokens} tokens"
    return _with_sessions(Workload(arrival, prompt, output, note, identity=identity), spec.sessions, seed)


def _with_sessions(workload: Workload, sessions: int | None, seed: int) -> Workload:
    """Give each request a session drawn uniformly from `sessions` users, from a stream of its own."""
    if sessions is None:
        return workload
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    ids = rng.integers(0, sessions, size=workload.num_requests, dtype=np.int64)
    return dataclasses.replace(workload, session_id=ids)
