"""vLLM's TPU path (tpu-inference, facts §1.1-1.4): static shapes.

Every step is padded up to the first token bucket >= its tokens and the first request bucket >= its
sequences, and costed at that shape (padding rows run through the matmuls and the sampler; ragged paged
attention covers only the real sequences). A shape this replica has not compiled yet -- because precompile
was skipped or did not cover that bucket -- is traced, lowered and compiled synchronously inside the step:
the whole replica stalls for that compile, then the shape stays compiled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.cost.base import StepBatch, StepCost
from sim.runtime.buckets import pad_to
from sim.runtime.jitter import StragglerJitter
from sim.runtime.runs import filled, prepend, price_steps, retract_steps
from sim.runtime.xla_compile import SAMPLE_VARIANTS, XlaCompileTimes


class XlaRuntime:
    name = "xla"

    def __init__(
        self,
        base,
        *,
        token_buckets: list[int],
        request_buckets: list[int],
        attn_request_buckets: list[int],
        precompiled_tokens: list[int],
        compile_times: XlaCompileTimes,
        cache: str,
        jitter: StragglerJitter,
    ):
        self.base = base
        self.provenance = base.provenance
        self.token_buckets = token_buckets
        self.request_buckets = request_buckets
        self.attn_request_buckets = attn_request_buckets
        self.compile_times, self.cache = compile_times, cache
        self.small_s = compile_times.small(cache)
        self.jitter = jitter
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

    def retract(self, comm: Sequence[float], stall: Sequence[float]) -> None:
        """Take back the newest len(comm) priced steps, which will not be taken (event skipping looks ahead);
        comm and stall are their communication and compile-stall seconds, oldest first."""
        retract_steps(self.jitter, self.base, comm, stall)

    def decode_run_costs(self, n: int, contexts: np.ndarray):
        """step_cost() of a run of decode steps of n sequences, vectorised (bit-identical per step). All steps
        share one shape: the first prices (and compiles) it the scalar way, the rest cannot miss."""
        run_components = getattr(self.base, "decode_run_components", None)
        if run_components is None:
            return None
        first = self.step_cost(StepBatch(n, int(contexts[0]), (), (), n))
        t = pad_to(self.token_buckets, n)
        r = pad_to(self.request_buckets, n)
        compute, memory, comm = run_components(n, t - n, r - n, contexts[1:])
        k = len(contexts) - 1
        overhead = self.base.overhead_s
        seconds, comm_s = price_steps(compute, memory, comm, overhead, self.jitter, k)  # stall 0: compiled
        return (
            prepend(first.seconds, seconds),
            prepend(first.compute_s, compute),
            prepend(first.memory_s, memory),
            prepend(first.communication_s, comm_s),
            prepend(first.overhead_s, filled(compute, overhead, k)),
            prepend(first.compile_stall_s, filled(compute, 0.0, k)),
            t - n,
        )

    def step_cost(self, batch: StepBatch) -> StepCost:
        n = batch.num_decode_seqs + sum(batch.prefill_new_tokens)
        seqs = batch.num_decode_seqs + len(batch.prefill_new_tokens)
        t = pad_to(self.token_buckets, n)
        r = pad_to(self.request_buckets, seqs)
        a = pad_to(self.attn_request_buckets, seqs)
        if t is None or r is None or a is None:
            raise AssertionError(f"step of {n} tokens / {seqs} sequences exceeds every bucket")
        stall = self._compile_misses(t, r, a)
        compute_s, memory_s, comm_s = self.base.components(batch, t - n, r - seqs)
        if comm_s:
            comm_s *= self.jitter.factor()
        overhead = self.base.overhead_s
        seconds = (compute_s if compute_s > memory_s else memory_s) + comm_s + overhead + stall
        return StepCost(seconds, compute_s, memory_s, comm_s, overhead, stall, t - n)
