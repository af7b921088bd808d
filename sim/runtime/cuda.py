"""vLLM's CUDA path (cudagraph_mode FULL_AND_PIECEWISE, facts §2.4).

- A uniform decode step (every sequence computes one token) with at most the largest capture size replays a
  full CUDA graph captured at the next capture size: it computes the padded token count.
- A step with prefill tokens, up to the largest capture size, replays piecewise graphs at the padded size;
  attention runs outside the graphs, adding per-layer launch overhead.
- Above the largest capture size (or with enforce_eager) the step runs eagerly: no padding, more overhead.
"""

from __future__ import annotations

from dataclasses import replace

from sim.cost.base import StepBatch, StepCost
from sim.runtime.buckets import pad_to
from sim.runtime.jitter import StragglerJitter


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

    def step_cost(self, batch: StepBatch) -> StepCost:
        n = batch.num_tokens
        if n > self.max_capture:
            cost, extra, pad = self.base.step_cost(batch), self.eager_overhead_s, 0
        else:
            pad = pad_to(self.capture_sizes, n) - n
            uniform_decode = not batch.prefill_new_tokens
            if pad:
                batch = replace(batch, num_padding_tokens=pad, num_padding_seqs=pad if uniform_decode else 0)
            cost = self.base.step_cost(batch)
            extra = 0.0 if uniform_decode else self.piecewise_overhead_s
        comm = cost.communication_s * self.jitter.factor()
        return replace(
            cost,
            seconds=cost.seconds + extra + comm - cost.communication_s,
            communication_s=comm,
            overhead_s=cost.overhead_s + extra,
            padding_tokens=pad,
        )
