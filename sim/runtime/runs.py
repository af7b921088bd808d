"""What the CUDA and XLA runtimes share for event skipping (sim/replica/replica.py): pricing the steps of a
decode run in one go, and taking back a step that was priced ahead but not taken.

Run pricing repeats step_cost()'s arithmetic in its order -- max(compute, memory) + jittered communication +
overhead -- on plain-float lists for short runs and numpy arrays for long ones, so every number is
bit-identical to pricing the steps one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def price_steps(compute, memory, comm: float, overhead: float, jitter, k: int):
    """(seconds, communication) of k steps from their roofline parts (lists or arrays, matching)."""
    if isinstance(compute, list):
        comm_s = [comm * f for f in jitter.factors(k)] if comm else [0.0] * k
        seconds = [
            (c if c > m else m) + x + overhead for c, m, x in zip(compute, memory, comm_s, strict=True)
        ]
        return seconds, comm_s
    comm_s = comm * np.asarray(jitter.factors(k)) if comm else np.zeros(k)
    return np.where(compute > memory, compute, memory) + comm_s + overhead, comm_s


def filled(like, value: float, k: int):
    """k copies of value, as a list or an array like `like`."""
    return [value] * k if isinstance(like, list) else np.full(k, value)


def prepend(head: float, tail):
    """head followed by tail, keeping tail's kind (list or array)."""
    return [head, *tail] if isinstance(tail, list) else np.concatenate(([head], tail))


def retract_steps(jitter, base, comm: Sequence[float], stall: Sequence[float]) -> None:
    """Undo the side effects of pricing the newest len(comm) steps, which will not be taken (columns oldest
    first): their jitter factors go back to the stream, and the base model forgets them too. A step that
    compiled a shape is never retracted (the first step of a run is always taken)."""
    if any(stall):
        raise AssertionError("a step that compiled a shape cannot be retracted")
    jitter.give_back(sum(1 for x in comm if x))
    forget = getattr(base, "forget_last_steps", None)
    if forget is not None:
        forget(len(comm))
