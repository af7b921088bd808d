"""Per-request state inside a replica. One object per request, never one per token.

Token times are not stored: a request emits one token per engine step while it runs, so its tokens are
described by *segments* -- (first step, last step) ranges of the replica's step counter -- and the times
come from the replica's array of step end times. Preemption or an abort closes a segment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import IntEnum


class Status(IntEnum):
    WAITING = 0  # queued, not holding KV blocks
    PREFILL = 1  # running, still computing its prompt (or recomputing after preemption)
    DECODE = 2  # running, one token per step
    FINISHED = 3
    FAILED = 4


class RequestState:
    """Mutable state of one request. While DECODE, the counters live in the decode_* fields and advance
    implicitly with the step counter (computed = decode_start_computed + step - decode_start_step); the
    scheduler materialises them only when the request leaves the decode set."""

    __slots__ = (
        "req_id",
        "arrival_s",
        "num_prompt_tokens",
        "max_output_tokens",
        "num_computed_tokens",
        "num_output_tokens",
        "num_blocks",
        "status",
        "decode_start_step",
        "decode_start_computed",
        "decode_start_output",
        "finish_step",
        "first_token_s",
        "end_s",
        "segments",
        "segment_start",
        "num_preemptions",
        "num_recomputed_tokens",
        "fail_reason",
        "replica_id",
        "num_attempts",
        "block_hashes",
        "cached_hashes",
        "num_hashed_blocks",
        "num_cached_tokens",
        "spec_emitted",
        "spec_join_blocks",
        "num_external_tokens",
        "handoff_output_tokens",
        "prefill_end_s",
        "kv_transfer_s",
    )

    def __init__(self, req_id: int, arrival_s: float, num_prompt_tokens: int, max_output_tokens: int):
        self.req_id = req_id
        self.arrival_s = arrival_s
        self.num_prompt_tokens = num_prompt_tokens
        self.max_output_tokens = max_output_tokens
        self.num_computed_tokens = 0
        self.num_output_tokens = 0
        self.num_blocks = 0
        self.status = Status.WAITING
        self.decode_start_step = -1
        self.decode_start_computed = 0
        self.decode_start_output = 0
        self.finish_step = -1
        self.first_token_s = math.nan
        self.end_s = math.nan
        self.segments: list[tuple[int, int]] = []  # (first step, last step) of each run of tokens
        self.segment_start = -1
        self.num_preemptions = 0
        self.num_recomputed_tokens = 0
        self.fail_reason: str | None = None
        self.replica_id = -1
        self.num_attempts = 1  # 1 + retries after a replica failure
        # Prefix caching: the chained hash of each full block of prompt + output (None: no token identity),
        # the hashes of the cached blocks this request holds, how many of its blocks were offered to the
        # cache, and the prompt tokens its first admission found cached (-1 before it is admitted).
        self.block_hashes: list[int] | None = None
        self.cached_hashes: list[int] = []
        self.num_hashed_blocks = 0
        self.num_cached_tokens = -1
        # Speculative decoding: output tokens emitted after each of the current decode stretch's steps
        # (cumulative, [0] = 0), drawn when it joins the decode set, and the KV blocks it held then.
        self.spec_emitted: Sequence[int] = ()  # shared empty tuple: no list per request without speculation
        self.spec_join_blocks = 0
        # Prefill/decode disaggregation (sim/fleet/disaggregation.py): prompt tokens whose KV a connector
        # delivered (computed on admission), the output a request in its prefill phase will ask of the decode
        # pool (0 outside that phase), when its prefill ended and how long its KV took to cross.
        self.num_external_tokens = 0
        self.handoff_output_tokens = 0
        self.prefill_end_s = math.nan
        self.kv_transfer_s = math.nan

    def restart(self) -> None:
        """Start over for a retry on another replica: nothing computed, nothing streamed. Arrival time,
        preemption counts and the attempt count stay, so latencies count from the original arrival."""
        self.restart_on_new_replica()
        self.num_attempts += 1

    def restart_on_new_replica(self) -> None:
        """Reset what a replica did with the request (its counters, blocks, token times), keeping the request's
        identity and history: a retry, or the hand-off from a prefill replica to a decode replica."""
        self.num_computed_tokens = 0
        self.num_output_tokens = 0
        self.num_blocks = 0
        self.status = Status.WAITING
        self.decode_start_step = -1
        self.finish_step = -1
        self.first_token_s = math.nan
        self.end_s = math.nan
        self.segments = []
        self.segment_start = -1
        self.replica_id = -1
        self.cached_hashes = []  # the failed replica's cache went with it
        self.num_hashed_blocks = 0

    @property
    def finished(self) -> bool:
        """Completed (all its tokens out), as opposed to waiting, running or failed."""
        return self.status == Status.FINISHED

    @property
    def num_tokens(self) -> int:
        """Prompt plus the tokens generated so far: what num_computed_tokens chases (valid outside DECODE)."""
        return self.num_prompt_tokens + self.num_output_tokens

    def __repr__(self) -> str:
        return f"RequestState({self.req_id}, {self.status.name}, computed={self.num_computed_tokens})"
