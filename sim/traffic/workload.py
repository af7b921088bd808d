"""The workload of one run: arrival time, prompt length and output length of every request."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sim.traffic.arrivals import arrival_times
from sim.traffic.identity import SubsetIdentity, TokenIdentity
from sim.traffic.lengths import sample_lengths
from sim.traffic.sessions import conversations, shared_prefix_identity
from sim.traffic.spec import TraceLengths, WorkloadSpec
from sim.traffic.trace import TraceData, load_trace


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
        trace = load_trace(spec.lengths)
        keep = np.ones(len(trace.arrival_s), dtype=bool)
        if plan.duration_s is not None:
            keep &= trace.arrival_s <= plan.duration_s
        idx = np.flatnonzero(keep)
        if plan.num_requests is not None:
            idx = idx[: plan.num_requests]
        if trace.follows is not None or trace.identity is not None:
            if len(idx) < len(trace.arrival_s):  # a conversation cut mid-way would wait for a missing turn
                trace = _first(trace, len(idx))
            workload = Workload(
                trace.arrival_s,
                trace.prompt_tokens,
                trace.output_tokens,
                trace.note,
                session_id=trace.session_id,
                identity=trace.identity,
                follows=trace.follows,
                think_s=trace.think_s,
            )
            return workload if trace.session_id is not None else _with_sessions(workload, spec.sessions, seed)
        return _with_sessions(
            Workload(trace.arrival_s[idx], trace.prompt_tokens[idx], trace.output_tokens[idx], trace.note),
            spec.sessions,
            seed,
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


def _first(trace: TraceData, n: int) -> TraceData:
    """The first n requests of a trace with identity: a later turn whose predecessor is cut is cut too."""
    keep = np.zeros(len(trace.arrival_s), dtype=bool)
    keep[:n] = True
    if trace.follows is not None:
        for i, prev in enumerate(trace.follows.tolist()):
            if prev >= 0 and not keep[prev]:
                keep[i] = False
    idx = np.flatnonzero(keep)
    remap = {int(old): new for new, old in enumerate(idx)}
    follows = None
    if trace.follows is not None:
        follows = np.asarray([remap[int(f)] if f >= 0 else -1 for f in trace.follows[idx]], dtype=np.int64)
    identity = trace.identity
    return TraceData(
        trace.arrival_s[idx],
        trace.prompt_tokens[idx],
        trace.output_tokens[idx],
        trace.note,
        SubsetIdentity(identity, idx) if identity is not None else None,
        trace.session_id[idx] if trace.session_id is not None else None,
        follows,
        trace.think_s[idx] if trace.think_s is not None else None,
    )
