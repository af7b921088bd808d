"""vLLM's TPU path (tpu-inference; docs/references.md, "TPU buckets" and "compile on a miss"): static shapes.

Every step is padded up to the first token bucket >= its tokens and the first request bucket >= its
sequences, and costed at that shape (padding rows run through the matmuls and the sampler; ragged paged
attention covers only the real sequences). A shape this replica has not compiled yet -- because precompile
was skipped or did not cover that bucket -- is traced, lowered and compiled synchronously inside the step:
the whole replica stalls for that compile, then the shape stays compiled.

One instance per replica: it owns that replica's compiled shapes and jitter stream (sim/cost/base.py).
"""

from __future__ import annotations

from sim.cost.base import DeviceTimeModel, IntColumn, StepBatch, StepColumns, StepCost, StepCostModel
from sim.runtime.buckets import pad_to
from sim.runtime.jitter import StragglerJitter
from sim.runtime.runs import give_back_jitter, run_from_parts, step_from_parts
from sim.runtime.xla_compile import SAMPLE_VARIANTS, XlaCompileTimes


class XlaRuntime(StepCostModel):
    name = "xla"

    def __init__(
        self,
        device: DeviceTimeModel,
        *,
        token_buckets: list[int],
        request_buckets: list[int],
        attn_request_buckets: list[int],
        precompiled_tokens: list[int],
        compile_times: XlaCompileTimes,
        cache: str,
        jitter: StragglerJitter,
    ):
        self.device = device
        self.provenance = device.provenance
        self.token_buckets = token_buckets
        self.request_buckets = request_buckets
        self.attn_request_buckets = attn_request_buckets
        self.compile_times, self.cache = compile_times, cache
        self.small_s = compile_times.small(cache)
        self.jitter = jitter
        # Pricing draws jitter factors, which retract gives back; compiles happen only in a run's first
        # step, which is always taken.
        self.keeps_step_state = jitter.active
        # Shapes compiled so far on this replica.
        self.compiled_backbone = {(t, a) for t in precompiled_tokens for a in attn_request_buckets}
        precompiled_small = bool(precompiled_tokens)
        self.compiled_select = {(t, r) for t in precompiled_tokens for r in request_buckets if r <= t}
        self.compiled_request = set(request_buckets) if precompiled_small else set()

    def _compile_misses(self, t: int, r: int, a: int) -> float:
        stall = 0.0
        if (t, a) not in self.compiled_backbone:
            self.compiled_backbone.add((t, a))
            stall += self.compile_times.backbone(t, self.cache)
        if (t, r) not in self.compiled_select:
            self.compiled_select.add((t, r))
            stall += self.small_s
        if r not in self.compiled_request:
            self.compiled_request.add(r)
            stall += self.small_s * (2 + SAMPLE_VARIANTS)  # logits, logprobs and the sampler variants
        return stall

    def step_cost(self, batch: StepBatch) -> StepCost:
        n = batch.num_tokens
        seqs = batch.num_decode_seqs + len(batch.prefill_new_tokens)
        t = pad_to(self.token_buckets, n)
        r = pad_to(self.request_buckets, seqs)
        a = pad_to(self.attn_request_buckets, seqs)
        if t is None or r is None or a is None:
            raise AssertionError(f"step of {n} tokens / {seqs} sequences exceeds every bucket")
        stall = self._compile_misses(t, r, a)
        parts = self.device.parts(batch, t - n, r - seqs)
        return step_from_parts(parts, self.jitter, self.device.overhead_s, stall, n, t - n)

    def price_decode_run(self, num_seqs: int, contexts: IntColumn) -> StepColumns:
        """All steps of the run share one shape: only the first can find it uncompiled. Usually it is
        compiled and the whole run is priced together; otherwise the first step is priced (and compiles)
        the scalar way and the rest together."""
        n = num_seqs
        t = pad_to(self.token_buckets, n)
        r = pad_to(self.request_buckets, n)
        a = pad_to(self.attn_request_buckets, n)
        if t is None or r is None or a is None:
            raise AssertionError(f"decode step of {n} sequences exceeds every bucket")
        if (t, a) in self.compiled_backbone and (t, r) in self.compiled_select and r in self.compiled_request:
            run = self.device.decode_run_parts(n, t - n, r - n, contexts)
            return run_from_parts(run, self.jitter, self.device.overhead_s, n, t - n)
        first = self.step_cost(StepBatch.decode(n, int(contexts[0])))
        run = self.device.decode_run_parts(n, t - n, r - n, contexts[1:])
        rest = run_from_parts(run, self.jitter, self.device.overhead_s, n, t - n)
        return StepColumns.prepend(first, rest)

    def retract(self, steps: StepColumns) -> None:
        give_back_jitter(self.jitter, steps)
