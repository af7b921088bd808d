"""Prefill/decode disaggregation (docs/references.md#disaggregated-prefill): a request's prompt is computed
on a replica of the prefill pool, its KV cache crosses the link between the pools, and a replica of the
decode pool generates the output.

As vLLM's disaggregated serving runs it (a proxy in front of a prefill and a decode instance with a KV
connector): the prefill instance runs the request with max_tokens = 1 and keeps nothing once the KV is sent;
the decode instance admits the request when its KV has arrived, with every prompt token but the last already
computed (a KV connector's tokens count as computed, and vLLM always computes at least one token to have
logits), so its first step computes that token and samples the first output token the client sees:

    TTFT = prefill (queueing included) + KV transfer + the decode replica's first step (queueing included)

The transfer: the prompt's KV bytes per chip of the prefill pool over the link between the pools, each chip
sending its own shard at once, plus a fixed latency. The decode replica reserves KV blocks for the request
when it admits it, after the transfer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from sim.replica.request import RequestState


@dataclass(frozen=True, slots=True)
class KVTransfer:
    """The link a request's KV crosses from the prefill pool to the decode pool."""

    kv_bytes_per_token: float  # per chip of the prefill pool (its shard of every layer's K and V)
    bandwidth_gbs: float  # per chip, one way
    latency_s: float  # per transfer, fixed (connection, handshake, first byte)

    def seconds(self, prompt_tokens: int) -> float:
        return self.latency_s + prompt_tokens * self.kv_bytes_per_token / (self.bandwidth_gbs * 1e9)


class RequestPhases(ABC):
    """Which pool a request goes to next, and what it carries there."""

    splits: bool  # whether a request can move between pools (False: nothing to look for as requests end)

    @abstractmethod
    def begin(self, req: RequestState) -> None:
        """A new request, about to be routed for the first time."""

    @abstractmethod
    def restart(self, req: RequestState) -> None:
        """A request a replica dropped, about to be retried from the start."""

    @abstractmethod
    def pool_for(self, req: RequestState) -> int | None:
        """The pool the request must go to (None: any)."""

    @abstractmethod
    def hands_off(self, req: RequestState) -> bool:
        """Whether a request that just finished on a replica goes on to another pool."""

    @abstractmethod
    def hand_off_s(self, req: RequestState) -> float:
        """How long a request handed off takes to reach the next pool (its KV crossing the link)."""

    @abstractmethod
    def hand_off(self, req: RequestState, prefill_end_s: float, transfer_s: float) -> None:
        """Ready a request handed off for the next pool, once its KV has arrived."""


class OnePhase(RequestPhases):
    """Aggregated serving: a request runs start to end on one replica of any pool."""

    splits = False

    def begin(self, req: RequestState) -> None:
        return None

    def restart(self, req: RequestState) -> None:
        return None

    def pool_for(self, req: RequestState) -> int | None:
        return None

    def hands_off(self, req: RequestState) -> bool:
        return False

    def hand_off_s(self, req: RequestState) -> float:
        raise AssertionError("aggregated serving hands nothing off")

    def hand_off(self, req: RequestState, prefill_end_s: float, transfer_s: float) -> None:
        raise AssertionError("aggregated serving hands nothing off")


class PrefillThenDecode(RequestPhases):
    """Disaggregated serving: the prompt on the prefill pool, then the output on the decode pool."""

    splits = True

    def __init__(self, prefill_pool: int, decode_pool: int, transfer: KVTransfer):
        self.prefill_pool, self.decode_pool, self.transfer = prefill_pool, decode_pool, transfer

    def begin(self, req: RequestState) -> None:
        req.handoff_output_tokens = req.max_output_tokens
        req.max_output_tokens = 1  # the prefill instance runs it with max_tokens = 1

    def restart(self, req: RequestState) -> None:
        """A dropped request starts over at the prefill pool (its KV, wherever it was, is gone)."""
        if req.handoff_output_tokens == 0:
            req.handoff_output_tokens = req.max_output_tokens
        req.max_output_tokens = 1
        req.num_external_tokens = 0

    def pool_for(self, req: RequestState) -> int | None:
        return self.prefill_pool if req.handoff_output_tokens else self.decode_pool

    def hands_off(self, req: RequestState) -> bool:
        return req.handoff_output_tokens > 0

    def hand_off_s(self, req: RequestState) -> float:
        return self.transfer.seconds(req.num_prompt_tokens)

    def hand_off(self, req: RequestState, prefill_end_s: float, transfer_s: float) -> None:
        """After the transfer: the request waits for a decode replica with its prompt's KV in hand."""
        output = req.handoff_output_tokens
        req.restart_on_new_replica()
        req.max_output_tokens = output
        req.handoff_output_tokens = 0
        req.num_external_tokens = req.num_prompt_tokens
        req.prefill_end_s = prefill_end_s
        req.kv_transfer_s = transfer_s
