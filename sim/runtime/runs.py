"""What the CUDA and XLA runtimes share: turning device parts into step costs, one step or a whole decode run.

Run pricing repeats one step's arithmetic in its order -- max(compute, memory) + jittered communication +
overhead (+ compile stall) -- on plain-float lists for short runs and numpy arrays for long ones, so every
number is bit-identical to pricing the steps one by one (sim/replica/replica.py relies on it).
"""

from __future__ import annotations

import numpy as np

from sim.cost.base import DeviceParts, DeviceRunParts, StepColumns, StepCost
from sim.runtime.jitter import StragglerJitter


def step_from_parts(
    parts: DeviceParts,
    jitter: StragglerJitter,
    overhead_s: float,
    stall_s: float,
    num_tokens: int,
    padding: int,
) -> StepCost:
    """One step's cost: the slower of compute and memory, plus jittered communication, overhead and stall."""
    comm = parts.communication_s
    if comm:
        comm *= jitter.factor()
    compute, memory = parts.compute_s, parts.memory_s
    return StepCost(
        seconds=(compute if compute > memory else memory) + comm + overhead_s + stall_s,
        compute_s=compute,
        memory_s=memory,
        communication_s=comm,
        overhead_s=overhead_s,
        compile_stall_s=stall_s,
        num_tokens=num_tokens,
        padding_tokens=padding,
        extrapolated=parts.extrapolated,
    )


def run_from_parts(
    run: DeviceRunParts, jitter: StragglerJitter, overhead_s: float, num_seqs: int, padding: int
) -> StepColumns:
    """The costs of a run of decode steps (no compile stalls: every step has the run's compiled shape)."""
    compute, memory, comm = run.compute_s, run.memory_s, run.communication_s
    k = len(compute)
    if isinstance(compute, list) and isinstance(memory, list):
        comm_s = [comm * f for f in jitter.factors(k)] if comm else [0.0] * k
        return StepColumns(
            [(c if c > m else m) + x + overhead_s for c, m, x in zip(compute, memory, comm_s, strict=True)],
            compute,
            memory,
            comm_s,
            [overhead_s] * k,
            [0.0] * k,
            [0.0] * k,
            [num_seqs] * k,
            [padding] * k,
            run.extrapolated,
        )
    compute_arr, memory_arr = np.asarray(compute), np.asarray(memory)
    comm_arr = comm * np.asarray(jitter.factors(k)) if comm else np.zeros(k)
    return StepColumns(
        np.where(compute_arr > memory_arr, compute_arr, memory_arr) + comm_arr + overhead_s,
        compute_arr,
        memory_arr,
        comm_arr,
        np.full(k, overhead_s),
        np.zeros(k),
        np.zeros(k),
        np.full(k, num_seqs),
        np.full(k, padding),
        run.extrapolated,
    )


def give_back_jitter(jitter: StragglerJitter, steps: StepColumns) -> None:
    """Undo the jitter draws of steps priced and not taken (their communication was jittered). A step that
    compiled a shape is never retracted: the first step of a run is always taken."""
    if any(steps.compile_stall_s):
        raise AssertionError("a step that compiled a shape cannot be retracted")
    jitter.give_back(sum(1 for x in steps.communication_s if x))
