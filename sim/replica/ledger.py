"""The step ledger of one replica: every engine step it takes, recorded once, whichever path took it.

The one-event-per-step path records each step as it ends (``record``); event skipping records a whole run
of decode steps at once (``record_run``). Both add every ``StepCost`` field of every step to a running
total, step after step in step order, so the two paths give identical totals bit for bit (a floating-point
sum depends on the order of its additions; here the order is the steps' order whichever way they arrived).
``tests/test_event_skipping.py`` compares whole summary.json documents between the paths, and
``tests/test_ledger.py`` checks that every StepCost field has its total here: a new per-step quantity is a
StepCost field, its StepColumns column, and its line in each of the two recorders below.

NOTE: the additions are written out field by field rather than looped over field names: a replica records
hundreds of thousands of steps and runs, and a generic loop over fields costs about a tenth of a simulated
step (measured on benchmarks/run.py).

End times are kept for the whole run (token times are read from them; 8 bytes a step); steps that stalled
on a compile are kept as (end time, seconds) events for the time series.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

from sim.cost.base import StepColumns, StepCost


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    """Totals over a replica's run, reduced from its ledger."""

    num_steps: int  # engine steps taken (empty steps, where everything was preempted, included)
    totals: dict[str, float]  # StepCost field -> sum over steps (seconds is the busy time)
    compute_bound_steps: int  # steps whose compute time exceeded their memory time
    compile_stalls: int  # steps that compiled a shape on the spot
    peak_kv_blocks: int  # most KV blocks in use at once

    @property
    def busy_s(self) -> float:
        return self.totals["seconds"]

    @property
    def num_tokens(self) -> int:
        return int(self.totals["num_tokens"])

    @property
    def extrapolated_steps(self) -> int:
        return int(self.totals["extrapolated"])


class StepLedger:
    __slots__ = (
        "step_end_s",
        "stall_events",
        "peak_kv_blocks",
        "compute_bound_steps",
        "seconds",
        "compute_s",
        "memory_s",
        "communication_s",
        "overhead_s",
        "compile_stall_s",
        "proposer_s",
        "num_tokens",
        "padding_tokens",
        "extrapolated",
    )

    def __init__(self) -> None:
        self.step_end_s = array("d")  # end time of step k, k = the scheduler's step counter
        self.stall_events: list[tuple[float, float]] = []  # (end time, seconds) of steps that compiled
        self.peak_kv_blocks = 0
        self.compute_bound_steps = 0
        # Running totals, one per StepCost field.
        self.seconds = self.compute_s = self.memory_s = self.communication_s = 0.0
        self.overhead_s = self.compile_stall_s = self.proposer_s = 0.0
        self.num_tokens = self.padding_tokens = self.extrapolated = 0

    @property
    def num_steps(self) -> int:
        return len(self.step_end_s)

    def observe_kv_blocks(self, used: int) -> None:
        if used > self.peak_kv_blocks:
            self.peak_kv_blocks = used

    def record(self, cost: StepCost, end_s: float) -> None:
        """One step, ended at end_s."""
        self.step_end_s.append(end_s)
        self.seconds += cost.seconds
        self.compute_s += cost.compute_s
        self.memory_s += cost.memory_s
        self.communication_s += cost.communication_s
        self.overhead_s += cost.overhead_s
        self.proposer_s += cost.proposer_s
        self.num_tokens += cost.num_tokens
        self.padding_tokens += cost.padding_tokens
        self.extrapolated += cost.extrapolated
        if cost.compute_s > cost.memory_s:
            self.compute_bound_steps += 1
        if cost.compile_stall_s:
            self.compile_stall_s += cost.compile_stall_s
            self.stall_events.append((end_s, cost.compile_stall_s))

    def record_empty(self, end_s: float) -> None:
        """A step that computed nothing (everything in it was preempted): it takes a step index and no time."""
        self.step_end_s.append(end_s)

    def record_run(self, steps: StepColumns, ends: Sequence[float]) -> None:
        """The first len(ends) steps of a run, oldest first, with their end times (columns as plain lists);
        the same additions as record(), step after step."""
        k = len(ends)
        self.step_end_s.extend(ends)
        seconds, compute, memory = self.seconds, self.compute_s, self.memory_s
        communication, overhead, bound = self.communication_s, self.overhead_s, 0
        columns = zip(
            steps.seconds,
            steps.compute_s,
            steps.memory_s,
            steps.communication_s,
            steps.overhead_s,
            strict=True,
        )
        for s, c, m, x, o in islice(columns, k):  # the steps kept (the columns may hold more)
            seconds += s
            compute += c
            memory += m
            communication += x
            overhead += o
            if c > m:
                bound += 1
        self.seconds, self.compute_s, self.memory_s = seconds, compute, memory
        self.communication_s, self.overhead_s = communication, overhead
        self.compute_bound_steps += bound
        self.proposer_s += sum(steps.proposer_s[:k])
        self.num_tokens += sum(steps.num_tokens[:k])
        self.padding_tokens += sum(steps.padding_tokens[:k])
        self.extrapolated += sum(steps.extrapolated[:k])
        if any(steps.compile_stall_s[:k]):
            for end, stall in zip(ends, steps.compile_stall_s[:k], strict=True):
                if stall:
                    self.compile_stall_s += stall
                    self.stall_events.append((end, stall))

    def stats(self) -> ReplicaStats:
        """The totals of every step recorded so far."""
        return ReplicaStats(
            num_steps=self.num_steps,
            totals={
                "seconds": self.seconds,
                "compute_s": self.compute_s,
                "memory_s": self.memory_s,
                "communication_s": self.communication_s,
                "overhead_s": self.overhead_s,
                "compile_stall_s": self.compile_stall_s,
                "proposer_s": self.proposer_s,
                "num_tokens": self.num_tokens,
                "padding_tokens": self.padding_tokens,
                "extrapolated": self.extrapolated,
            },
            compute_bound_steps=self.compute_bound_steps,
            compile_stalls=len(self.stall_events),
            peak_kv_blocks=self.peak_kv_blocks,
        )
