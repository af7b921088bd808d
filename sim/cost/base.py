"""The step-cost seam: what a replica asks of its step costs, and what the runtimes ask of a device model.

Two declared interfaces, one per job:

- ``StepCostModel`` is what a replica calls: the seconds of one engine step (``step_cost``), of a run of
  pure decode steps at once (``price_decode_run``, for event skipping), and ``retract`` for steps it priced
  ahead and will not take. The runtimes (CUDA, XLA; ``sim/runtime/``) and the constant step time implement
  it.
- ``DeviceTimeModel`` is what a runtime wraps: the device work of a step at a given padded shape, before the
  runtime adds its own overheads, padding and compile stalls. The roofline and a measured profile implement it.

**State rule.** One device-time model serves every replica of a run, so it keeps no state that follows the
steps taken (a shared counter or history would mix replicas). Whatever must follow one replica's steps --
compiled shapes, a random stream of collective jitter -- lives in that replica's own ``StepCostModel``
object, built per replica; ``retract`` then only ever touches that replica's state. Per-step facts (was a
step extrapolated? did it compile?) are fields of the step's ``StepCost`` and are counted by the replica's
ledger (``sim/replica/ledger.py``), not by the model.

A step is summarised, not listed token by token: all decode sequences compute exactly one token, so they
are described by their count and the sum of their context lengths, while the (few) prefill chunks are
listed one by one. That is everything a roofline or a fitted profile needs, and it lets the scheduler keep
the summary as running sums instead of looping over the batch every step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter

import numpy as np


@dataclass(frozen=True, slots=True)
class StepBatch:
    """What one engine step computes."""

    num_decode_seqs: int  # sequences computing exactly one token (decode)
    decode_context_tokens: int  # sum over decode seqs of the context attended, the new token included
    prefill_new_tokens: tuple[int, ...]  # per prefill chunk: prompt tokens computed this step
    prefill_context_tokens: tuple[int, ...]  # per prefill chunk: context length after this chunk
    num_sampled_seqs: int  # sequences that sample a token at the end of the step
    num_padding_tokens: int = 0  # dummy token rows a static-shape runtime adds to reach its bucket
    num_padding_seqs: int = 0  # dummy request rows (logits/sampling padded to a request bucket)
    # Query tokens per decode sequence: 1, or 1 + k when speculative decoding verifies k proposed tokens (the
    # decode context then counts all of them: the last one attends computed + 1 + k tokens).
    decode_query_tokens: int = 1

    @property
    def num_tokens(self) -> int:
        return self.num_decode_seqs * self.decode_query_tokens + sum(self.prefill_new_tokens)

    @property
    def num_seqs(self) -> int:
        return self.num_decode_seqs + len(self.prefill_new_tokens)

    def work(self) -> tuple[int, int, int]:
        """(tokens computed, causal (query, key) pairs attended, KV tokens read) -- the features every
        step-cost model prices. A prefill chunk of n new tokens after p computed ones attends
        n*p + n(n+1)/2 pairs and reads its whole context p + n; a decode of q query tokens over a context c
        (the q included) is the same causal block: q*c - q(q-1)/2 pairs."""
        q = self.decode_query_tokens
        tokens = self.num_decode_seqs * q
        pairs = kv_read = self.decode_context_tokens
        if q > 1:
            pairs = q * pairs - self.num_decode_seqs * q * (q - 1) // 2
        for new, ctx in zip(self.prefill_new_tokens, self.prefill_context_tokens, strict=True):
            tokens += new
            pairs += new * (ctx - new) + new * (new + 1) // 2
            kv_read += ctx
        return tokens, pairs, kv_read

    @classmethod
    def decode(cls, num_seqs: int, context_tokens: int) -> StepBatch:
        """A pure decode step of num_seqs sequences whose contexts (new token included) sum to context_tokens."""
        return cls(num_seqs, context_tokens, (), (), num_seqs)

    @classmethod
    def make_empty(cls) -> StepBatch:
        return cls(0, 0, (), (), 0)


# A column of a run's steps: plain Python values (short runs) or a numpy array (long ones).
FloatColumn = list[float] | np.ndarray
IntColumn = list[int] | np.ndarray
BoolColumn = list[bool] | np.ndarray


@dataclass(slots=True, kw_only=True)
class StepCost:
    """One engine step: its seconds and where they went. compute_s and memory_s overlap (the slower one
    counts); communication, overhead and compile stalls are added on top. Every field is a per-step quantity
    the replica's ledger totals (sim/replica/ledger.py), so a new one is added here and in StepColumns.

    NOTE: not frozen, though nothing may change it once made: one is made per engine step, and a frozen
    dataclass costs about a microsecond more to build (~10% of a simulated step)."""

    seconds: float  # wall time of the step
    compute_s: float = 0.0  # FLOP-bound time of the device work
    memory_s: float = 0.0  # byte-bound time of the device work
    communication_s: float = 0.0  # tensor-parallel collectives, straggler jitter included
    overhead_s: float = 0.0  # host work per step (scheduling, launches, sampling bookkeeping)
    compile_stall_s: float = 0.0  # XLA compiling a shape it had not compiled, inside this step
    proposer_s: float = 0.0  # speculative decoding's drafter proposing the next step's tokens
    num_tokens: int = 0  # real tokens computed
    padding_tokens: int = 0  # dummy tokens computed to reach a compiled shape
    extrapolated: bool = False  # priced beyond the measured range of a profile

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"


@dataclass(slots=True)
class StepColumns:
    """The costs of a run of steps as columns: element j of every column belongs to step j (oldest first).
    Columns are all plain-float lists (short runs) or all numpy arrays (long ones), whichever prices faster;
    each element equals the StepCost field of the same name for that step, bit for bit. Fields are in
    StepCost's order (a test checks they match)."""

    seconds: FloatColumn
    compute_s: FloatColumn
    memory_s: FloatColumn
    communication_s: FloatColumn
    overhead_s: FloatColumn
    compile_stall_s: FloatColumn
    proposer_s: FloatColumn
    num_tokens: IntColumn
    padding_tokens: IntColumn
    extrapolated: BoolColumn

    def __len__(self) -> int:
        return len(self.seconds)

    def columns(self) -> tuple[FloatColumn | IntColumn | BoolColumn, ...]:
        """Every column, in STEP_FIELDS order."""
        return _COLUMNS(self)

    def slice(self, start: int, stop: int | None = None) -> StepColumns:
        """Steps start..stop-1, as plain-float lists."""
        if isinstance(self.seconds, list):
            return StepColumns(*(column[start:stop] for column in _COLUMNS(self)))
        return StepColumns(*(column[start:stop].tolist() for column in _COLUMNS(self)))

    def head(self, k: int) -> StepColumns:
        """The first k steps, as plain-float lists."""
        return self.slice(0, k)

    def tail(self, k: int) -> StepColumns:
        """The steps from index k on, as plain-float lists."""
        return self.slice(k)

    @classmethod
    def from_steps(cls, steps: Sequence[StepCost]) -> StepColumns:
        return cls(*([getattr(s, name) for s in steps] for name in STEP_FIELDS))

    @classmethod
    def prepend(cls, first: StepCost, rest: StepColumns) -> StepColumns:
        """first followed by rest's steps, each column keeping rest's kind (list or array)."""
        columns = []
        for head, column in zip(_COLUMNS(first), _COLUMNS(rest), strict=True):
            columns.append([head, *column] if isinstance(column, list) else np.concatenate(([head], column)))
        return cls(*columns)


STEP_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StepCost))
# Fields that count (tokens, steps) rather than measure time: reported as integers.
COUNT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(StepCost) if f.type in (int, bool, "int", "bool")
)
_COLUMNS = attrgetter(*STEP_FIELDS)


class StepCostModel(ABC):
    """Prices the engine steps of one replica (see the module docstring for the state rule).

    ``name`` names the model in reports; ``provenance`` maps each parameter to where its value came from
    (datasheet, published, estimated, measured, fitted, compiler estimate)."""

    name: str
    provenance: dict[str, str]
    # Whether pricing a step changes state that retract must undo (a stateless model says False, and the
    # replica then skips collecting the steps it would hand back).
    keeps_step_state: bool = False

    @abstractmethod
    def step_cost(self, batch: StepBatch) -> StepCost:
        """The cost of one step."""

    def price_decode_run(self, num_seqs: int, contexts: IntColumn) -> StepColumns:
        """step_cost() of each step of a run of pure decode steps of num_seqs sequences; contexts[j] is the
        context sum of step j (decode_context_tokens). Must equal pricing the steps one by one, bit for bit,
        side effects included; overrides vectorise it. This default prices them one by one."""
        return StepColumns.from_steps([self.step_cost(StepBatch.decode(num_seqs, int(c))) for c in contexts])

    def retract(self, steps: StepColumns) -> None:  # noqa: B027 -- stateless models have nothing to undo
        """Take back the newest len(steps) priced steps (oldest first in the columns): they will not be
        taken (event skipping priced them ahead). The model must be left as if they were never priced."""


@dataclass(slots=True)
class DeviceParts:
    """The device work of one step at a padded shape: compute and memory time overlap, communication adds."""

    compute_s: float
    memory_s: float
    communication_s: float
    extrapolated: bool = False  # priced beyond the range the model's numbers were measured over

    @property
    def device_s(self) -> float:
        """Seconds on the device: the slower of compute and memory, then the collectives."""
        return max(self.compute_s, self.memory_s) + self.communication_s


@dataclass(slots=True)
class DeviceRunParts:
    """DeviceParts of a run of pure decode steps of one batch shape, as columns (lists or arrays);
    communication is the same for every step of the run (same token rows)."""

    compute_s: FloatColumn
    memory_s: FloatColumn
    communication_s: float
    extrapolated: BoolColumn


class DeviceTimeModel(ABC):
    """The device time of a step at a given padded shape (sim/cost/roofline.py, sim/cost/profiled.py).
    Stateless: one instance serves every replica of a run. ``overhead_s`` is the host time per step the
    model's numbers leave out (0 when measured steps already include it)."""

    name: str
    provenance: dict[str, str]
    overhead_s: float

    @abstractmethod
    def parts(self, batch: StepBatch, padding_tokens: int, padding_seqs: int) -> DeviceParts:
        """The device work of `batch` run with extra padding rows (static shapes): padding rows go through
        the matmuls and the sampler, not through attention (ragged over real sequences) nor into the KV cache."""

    def decode_run_parts(
        self, num_seqs: int, padding_tokens: int, padding_seqs: int, contexts: IntColumn
    ) -> DeviceRunParts:
        """parts() of each step of a run of pure decode steps (contexts: the context sum per step), bit
        for bit. Columns are lists when contexts is a list, arrays when it is an array. This default
        prices the steps one by one; models override it to vectorise."""
        steps = [
            self.parts(StepBatch.decode(num_seqs, int(c)), padding_tokens, padding_seqs) for c in contexts
        ]
        comm = steps[0].communication_s if steps else 0.0
        compute = [s.compute_s for s in steps]
        memory = [s.memory_s for s in steps]
        extrapolated = [s.extrapolated for s in steps]
        if isinstance(contexts, np.ndarray):
            return DeviceRunParts(np.asarray(compute), np.asarray(memory), comm, np.asarray(extrapolated))
        return DeviceRunParts(compute, memory, comm, extrapolated)
