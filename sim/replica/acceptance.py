"""Speculative decoding's acceptance process: k proposals per step, position i passing with probability p_i
given that the ones before it passed (docs/references.md#speculative-decoding)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class SpeculativeDecoding:
    """The engine's speculative decoding, as the scheduler sees it."""

    num_speculative_tokens: int  # k: proposals verified per request per step
    acceptance: tuple[float, ...]  # p_i: probability that proposal i passes, given the ones before it did
    seed: int = 0  # the run's seed (each request's draws come from (seed, request id, attempt, stretch))

    def __post_init__(self) -> None:
        if self.num_speculative_tokens < 1:
            raise ValueError("speculative decoding needs at least one proposed token")
        if len(self.acceptance) != self.num_speculative_tokens:
            raise ValueError("one acceptance rate per proposed position")

    @property
    def mean_tokens_per_step(self) -> float:
        """Expected tokens a request emits per step (no output cap): 1 + sum_i prod_{j<=i} p_j."""
        return 1.0 + float(np.sum(np.cumprod(self.acceptance)))

    def draw_emitted(self, rng: np.random.Generator, tokens: int) -> list[int]:
        """Cumulative tokens emitted after each step ([0] = 0) until `tokens` are out; the last step emits
        only what is left (vLLM stops a request at its max_tokens)."""
        k = self.num_speculative_tokens
        passed = rng.random((tokens, k)) < np.asarray(self.acceptance)
        per_step = 1 + np.cumprod(passed, axis=1).sum(axis=1)  # accepted prefix + the target's own token
        cumulative = np.cumsum(per_step)
        steps = int(np.searchsorted(cumulative, tokens)) + 1  # first step at which `tokens` are out
        out = [0, *cumulative[: steps - 1].tolist(), tokens]
        return out
