"""vLLM's CUDA path (cudagraph_mode FULL_AND_PIECEWISE; docs/references.md, "CUDA graphs").

- A uniform decode step (every sequence computes one token) with at most the largest capture size replays a
  full CUDA graph captured at the next capture size: it computes the padded token count.
- A step with prefill tokens, up to the largest capture size, replays piecewise graphs at the padded size;
  attention runs outside the graphs, adding per-layer launch overhead.
- Above the largest capture size (or with enforce_eager) the step runs eagerly: no padding, more overhead.

One instance per replica: it owns that replica's stream of collective jitter (sim/cost/base.py, state rule).
"""

from __future__ import annotations

from sim.cost.base import DeviceTimeModel, IntColumn, StepBatch, StepColumns, StepCost, StepCostModel
from sim.runtime.buckets import padding_to
from sim.runtime.jitter import StragglerJitter
from sim.runtime.runs import give_back_jitter, run_from_parts, step_from_parts


class CudaRuntime(StepCostModel):
    name = "cuda"

    def __init__(
        self,
        device: DeviceTimeModel,
        *,
        capture_sizes: list[int],
        piecewise_overhead_s: float,
        eager_overhead_s: float,
        jitter: StragglerJitter,
    ):
        self.device = device
        self.provenance = device.provenance
        self.capture_sizes = capture_sizes
        self.max_capture = capture_sizes[-1] if capture_sizes else 0
        self.piecewise_overhead_s = piecewise_overhead_s
        self.eager_overhead_s = eager_overhead_s
        self.jitter = jitter
        self.keeps_step_state = jitter.active  # pricing draws jitter factors, which retract gives back

    def step_cost(self, batch: StepBatch) -> StepCost:
        n = batch.num_tokens
        overhead = self.device.overhead_s
        if n > self.max_capture:
            pad, pad_seqs = 0, 0
            overhead += self.eager_overhead_s
        else:
            pad = padding_to(self.capture_sizes, n)
            uniform_decode = not batch.prefill_new_tokens
            pad_seqs = pad // batch.decode_query_tokens if uniform_decode else 0
            if not uniform_decode:
                overhead += self.piecewise_overhead_s
        parts = self.device.parts(batch, pad, pad_seqs)
        return step_from_parts(parts, self.jitter, overhead, 0.0, n, pad)

    def price_decode_run(self, num_seqs: int, contexts: IntColumn) -> StepColumns:
        overhead = self.device.overhead_s
        if num_seqs > self.max_capture:
            pad = 0
            overhead += self.eager_overhead_s
        else:
            pad = padding_to(self.capture_sizes, num_seqs)
        run = self.device.decode_run_parts(num_seqs, pad, pad, contexts)
        return run_from_parts(run, self.jitter, overhead, num_seqs, pad)

    def retract(self, steps: StepColumns) -> None:
        give_back_jitter(self.jitter, steps)
