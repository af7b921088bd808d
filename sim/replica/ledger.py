"""The step ledger of one replica: every engine step it takes, recorded once, whichever path took it.

The one-event-per-step path records each step as it ends (``record``); event skipping records a whole run
of decode steps at once (``record_run``). Both append the step's ``StepCost`` fields, in field order, as one
row of a row-major buffer, so a per-step quantity added to ``StepCost`` is totalled here without another
line, and the two paths give identical totals by construction: the buffer holds the same values in the same
order whichever way the steps arrived, and it is folded into the totals in fixed chunks of ``FOLD_STEPS``
steps (floating-point sums depend on which values are added together; the chunks never depend on how the
steps arrived). Count fields (tokens, flags) are integers below 2**53, so their float sums are exact.

End times are kept for the whole run (token times are read from them; 8 bytes a step); cost rows only until
folded, so memory stays flat however long the run.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, islice
from operator import attrgetter

import numpy as np

from sim.cost.base import COUNT_FIELDS, STEP_FIELDS, StepColumns, StepCost

FOLD_STEPS = 4096  # steps folded into the totals at a time
_WIDTH = len(STEP_FIELDS)
_ROW = attrgetter(*STEP_FIELDS)
_COMPUTE, _MEMORY, _STALL = (STEP_FIELDS.index(n) for n in ("compute_s", "memory_s", "compile_stall_s"))


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
    def __init__(self) -> None:
        self.step_end_s = array("d")  # end time of step k, k = the scheduler's step counter
        self._rows = array("d")  # StepCost fields of the steps not folded yet, row-major
        self._totals = np.zeros(_WIDTH)
        self._compute_bound = 0
        self._compile_stalls = 0
        self.peak_kv_blocks = 0

    @property
    def num_steps(self) -> int:
        return len(self.step_end_s)

    def observe_kv_blocks(self, used: int) -> None:
        if used > self.peak_kv_blocks:
            self.peak_kv_blocks = used

    def record(self, cost: StepCost, end_s: float) -> None:
        """One step, ended at end_s."""
        self.step_end_s.append(end_s)
        self._rows.extend(_ROW(cost))
        if len(self._rows) >= FOLD_STEPS * _WIDTH:
            self._fold()

    def record_empty(self, end_s: float) -> None:
        """A step that computed nothing (everything in it was preempted): it takes a step index and no time."""
        self.record(_EMPTY, end_s)

    def record_run(self, steps: StepColumns, ends: Sequence[float]) -> None:
        """The first len(ends) steps of a run, oldest first, with their end times (columns as plain lists)."""
        self.step_end_s.extend(ends)
        rows = zip(*steps.columns(), strict=True)  # every column has one value per priced step
        self._rows.extend(chain.from_iterable(islice(rows, len(ends))))
        while len(self._rows) >= FOLD_STEPS * _WIDTH:
            self._fold()

    def _fold(self) -> None:
        """Add the oldest FOLD_STEPS buffered steps to the totals and drop them."""
        sums, compute_bound, stalls = _reduce(self._rows, FOLD_STEPS)
        self._totals += sums
        self._compute_bound += compute_bound
        self._compile_stalls += stalls
        del self._rows[: FOLD_STEPS * _WIDTH]

    def total(self, name: str) -> float:
        """The sum of one StepCost field over every step recorded so far (for samplers reading mid-run)."""
        i = STEP_FIELDS.index(name)
        rows = np.frombuffer(self._rows, dtype=np.float64).reshape(-1, _WIDTH)
        value = float(self._totals[i] + rows[:, i].sum())
        del rows  # an array('d') cannot grow while a numpy view of it is alive
        return value

    def stats(self) -> ReplicaStats:
        """The totals of every step recorded so far (the buffered remainder added without folding it, so
        asking never changes how later steps fold)."""
        sums, compute_bound, stalls = _reduce(self._rows, len(self._rows) // _WIDTH)
        totals = self._totals + sums
        return ReplicaStats(
            num_steps=self.num_steps,
            totals={
                name: int(round(value)) if name in COUNT_FIELDS else float(value)
                for name, value in zip(STEP_FIELDS, totals, strict=True)
            },
            compute_bound_steps=self._compute_bound + compute_bound,
            compile_stalls=self._compile_stalls + stalls,
            peak_kv_blocks=self.peak_kv_blocks,
        )


def _reduce(rows: array, k: int) -> tuple[np.ndarray, int, int]:
    """(per-field sums, steps compute-bound, steps with a compile stall) over the first k buffered steps.
    The numpy view ends with this call: an array('d') cannot grow or shrink while one is alive."""
    chunk = np.frombuffer(rows, dtype=np.float64, count=k * _WIDTH).reshape(k, _WIDTH)
    sums = chunk.sum(axis=0)
    compute_bound = int(np.count_nonzero(chunk[:, _COMPUTE] > chunk[:, _MEMORY]))
    stalls = int(np.count_nonzero(chunk[:, _STALL]))
    return sums, compute_bound, stalls


_EMPTY = StepCost(seconds=0.0)
