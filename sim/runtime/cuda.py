"""vLLM's CUDA path (cudagraph_mode FULL_AND_PIECEWISE, facts §2.4).

- A uniform decode step (every sequence computes one token) with at most the largest capture size replays a
  full CUDA graph captured at the next capture size: it computes the padded token count.
- A step with prefill tokens, up to the largest capture size, replays piecewise graphs at the padded size;
  attention runs outside the graphs, adding per-layer launch overhead.
- Above the largest capture size (or with enforce_eager) the step runs eagerly: no padding, more overhead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.cost.base import StepBatch, StepCost
from sim.runtime.buckets import pad_to
from sim.runtime.jitter import StragglerJitter
from sim.runtime.runs import filled, price_steps, retract_steps


class CudaRuntime:
    name = "cuda"

    def __init__(
        self,
        base,
        *,
        capture_sizes: list[int],
        piecewise_overhead_s: float,
        eager_overhead_s: float,
        jitter: StragglerJitter,
    ):
        self.base = base
        self.provenance = base.provenance
        self.capture_sizes = capture_sizes
        self.max_capture = capture_sizes[-1] if capture_sizes else 0
        self.piecewise_overhead_s = piecewise_overhead_s
        self.eager_overhead_s = eager_overhead_s
        self.jitter = jitter

    def retract(self, comm: Sequence[float], stall: Sequence[float]) -> None:
        """Take back the newest len(comm) priced steps, which will not be taken (event skipping looks ahead);
        comm and stall are their communication and compile-stall seconds, oldest first."""
        retract_steps(self.jitter, self.base, comm, stall)

    def decode_run_costs(self, n: int, contexts: np.ndarray):
        """step_cost() of a run of uniform decode steps, vectorised (bit-identical per step); None when the
        base model cannot price runs. Returns (seconds, compute, memory, comm, overhead, stall, padding)."""
        run_components = getattr(self.base, "decode_run_components", None)
        if run_components is None:
            return None
        overhead = self.base.overhead_s
        if n > self.max_capture:
            pad = 0
            overhead += self.eager_overhead_s
        else:
            pad = pad_to(self.capture_sizes, n) - n
        compute, memory, comm = run_components(n, pad, pad, contexts)
        k = len(contexts)
        seconds, comm_s = price_steps(compute, memory, comm, overhead, self.jitter, k)
        return seconds, compute, memory, comm_s, filled(compute, overhead, k), filled(compute, 0.0, k), pad

    def step_cost(self, batch: StepBatch) -> StepCost:
        n = batch.num_decode_seqs + sum(batch.prefill_new_tokens)
        overhead = self.base.overhead_s
        if n > self.max_capture:
            pad, pad_seqs = 0, 0
            overhead += self.eager_overhead_s
        else:
            pad = pad_to(self.capture_sizes, n) - n
            uniform_decode = not batch.prefill_new_tokens
            pad_seqs = pad if uniform_decode else 0
            if not uniform_decode:
                overhead += self.piecewise_overhead_s
        compute_s, memory_s, comm_s = self.base.components(batch, pad, pad_seqs)
        if comm_s:
            comm_s *= self.jitter.factor()
        seconds = (compute_s if compute_s > memory_s else memory_s) + comm_s + overhead
        return StepCost(seconds, compute_s, memory_s, comm_s, overhead, 0.0, pad)
