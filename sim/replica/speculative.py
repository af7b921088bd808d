"""Speculative decoding in vLLM V1's scheduler (docs/references.md#speculative-decoding).

Each step, every decoding request has k proposed tokens to verify: the step computes 1 + k query tokens for
it (they count against the token budget and take KV slots), the rejection sampler accepts the longest
prefix of proposals that pass, and the request emits the accepted proposals plus one token the target
sampled itself -- between 1 and k + 1 tokens. Rejected proposals' KV slots are overwritten by the next
step (vLLM rolls num_computed_tokens back), so the context grows by what was emitted.

Acceptance: position i (1..k) passes with probability p_i given that every earlier one passed, independently
of the step and the request. With one rate p for every position, a step emits (1 - p^(k+1)) / (1 - p) tokens
on average: k + 1 at p = 1, 1 at p = 0.

How it is simulated: when a request joins the decode set, its steps' emitted counts are drawn at once (a
random stream per request and attempt, from the run's seed), so its finish step is known, as the plain
scheduler knows it; the decode set keeps, per future step, the tokens its contexts grow by and the KV
blocks it takes. That is O(output tokens) per request at joining, and runs of pure decode steps are taken
one step at a time (event skipping needs the lock-step decode of the plain scheduler).
"""

from __future__ import annotations

import numpy as np

from sim.replica.kv_cache import blocks_for
from sim.replica.request import RequestState
from sim.replica.scheduler import Scheduler, SchedulerConfig


class SpeculativeScheduler(Scheduler):
    """vLLM's scheduler with k proposals verified per decoding request per step."""

    def __init__(self, config: SchedulerConfig):
        spec = config.speculative
        assert spec is not None
        super().__init__(config)
        self.spec = spec
        self.decode_query_tokens = 1 + spec.num_speculative_tokens
        self._growth: dict[int, int] = {}  # step -> tokens the decode set's contexts grow by with it
        self._needs: dict[int, int] = {}  # step -> KV blocks the decode set takes at its start
        self._stretches: dict[int, int] = {}  # request id -> decode stretches drawn (a fresh draw each)

    # ---- decode-set hooks ------------------------------------------------------------------------------
    def _decode_steps(self, req: RequestState) -> int:
        stretch = self._stretches.get(req.req_id, 0)
        self._stretches[req.req_id] = stretch + 1
        rng = np.random.default_rng((self.spec.seed, req.req_id, req.num_attempts, stretch))
        req.spec_emitted = self.spec.draw_emitted(rng, req.max_output_tokens - req.num_output_tokens)
        req.spec_join_blocks = req.num_blocks
        return len(req.spec_emitted) - 1

    def _decode_emitted(self, req: RequestState, steps: int) -> int:
        return req.spec_emitted[steps]

    def _slots(self, req: RequestState, steps: int) -> int:
        """KV blocks req needs for its (steps+1)-th decode step: its context then plus 1 + k query slots."""
        computed = req.decode_start_computed + req.spec_emitted[steps]
        return blocks_for(computed + self.decode_query_tokens, self.block_size)

    def _decode_blocks_held(self, req: RequestState, step: int) -> int:
        steps = step - req.decode_start_step
        if steps == 0:
            return req.spec_join_blocks
        return max(req.spec_join_blocks, self._slots(req, steps - 1))

    def _decode_block_needs(self, step: int) -> int:
        return self._needs.get(step, 0)

    def _decode_block_need(self, req: RequestState, step: int) -> int:
        steps = step - req.decode_start_step
        return max(0, self._slots(req, steps) - self._decode_blocks_held(req, step))

    def _decode_growth(self, step: int) -> int:
        self._needs.pop(step, None)
        return self._growth.pop(step, 0)

    def _track_decode(self, req: RequestState, step: int, sign: int) -> None:
        start, emitted = req.decode_start_step, req.spec_emitted
        growth, needs = self._growth, self._needs
        for j in range(step - start, len(emitted) - 1):
            at = start + j
            growth[at] = growth.get(at, 0) + sign * (emitted[j + 1] - emitted[j])
            need = self._decode_block_need(req, at)
            if need:
                needs[at] = needs.get(at, 0) + sign * need

    # ---- no runs of pure decode steps: emission is not lock-step ---------------------------------------
    def decode_run_length(self, limit: int) -> int:
        return 0
