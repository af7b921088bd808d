"""The step-cost interface every model implements (roofline now; padded XLA buckets, collectives and
measured profiles plug in behind the same call).

A step is summarised, not listed token by token: all decode sequences compute exactly one token, so they
are described by their count and the sum of their context lengths, while the (few) prefill chunks are
listed one by one. That is everything a roofline or a fitted profile needs, and it lets the scheduler keep
the summary as running sums instead of looping over the batch every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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

    @property
    def num_tokens(self) -> int:
        return self.num_decode_seqs + sum(self.prefill_new_tokens)

    @property
    def num_seqs(self) -> int:
        return self.num_decode_seqs + len(self.prefill_new_tokens)

    def work(self) -> tuple[int, int, int]:
        """(tokens computed, causal (query, key) pairs attended, KV tokens read) -- the features every
        step-cost model prices. A prefill chunk of n new tokens after p computed ones attends
        n*p + n(n+1)/2 pairs and reads its whole context p + n."""
        tokens = self.num_decode_seqs
        pairs = kv_read = self.decode_context_tokens
        for new, ctx in zip(self.prefill_new_tokens, self.prefill_context_tokens, strict=True):
            tokens += new
            pairs += new * (ctx - new) + new * (new + 1) // 2
            kv_read += ctx
        return tokens, pairs, kv_read

    @classmethod
    def make_empty(cls) -> StepBatch:
        return cls(0, 0, (), (), 0)


@dataclass(frozen=True, slots=True)
class StepCost:
    """Seconds for one step and where they go. compute_s and memory_s overlap (the slower one counts);
    communication and overhead are added on top."""

    seconds: float
    compute_s: float = 0.0
    memory_s: float = 0.0
    communication_s: float = 0.0
    overhead_s: float = 0.0
    compile_stall_s: float = 0.0  # XLA compiling a shape it had not compiled, inside this step
    padding_tokens: int = 0  # dummy tokens computed to reach a compiled shape

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"


class StepCostModel(Protocol):
    """Anything that prices a step. ``provenance`` maps each parameter to where its value came from
    (datasheet, published, estimated, measured, fitted)."""

    name: str
    provenance: dict[str, str]

    def step_cost(self, batch: StepBatch) -> StepCost: ...
