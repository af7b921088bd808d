"""The per-request table: one row per request, with the harness's per-request metrics.

TPOT = (E2E - TTFT) / max(1, generated - 1), one value per request (seed harness; `vllm bench serve` leaves
requests with one output token out of TPOT statistics instead -- documented in docs/metrics.md).
A request that ends after the client's timeout counts as failed ("timeout"), as the harness records it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd


class RequestRecord(Protocol):
    """What the table reads of a request (sim/replica/request.py's RequestState provides it)."""

    req_id: int
    replica_id: int
    arrival_s: float
    first_token_s: float
    end_s: float
    num_prompt_tokens: int
    num_output_tokens: int
    num_preemptions: int
    num_recomputed_tokens: int
    num_attempts: int
    num_cached_tokens: int  # prompt tokens found in the prefix cache at first admission (-1: never admitted)
    fail_reason: str | None

    @property
    def finished(self) -> bool: ...


def request_table(
    requests: Sequence[RequestRecord], timeout_s: float, requested_output: np.ndarray
) -> pd.DataFrame:
    n = len(requests)
    arrival = np.fromiter((r.arrival_s for r in requests), float, n)
    first = np.fromiter((r.first_token_s for r in requests), float, n)
    end = np.fromiter((r.end_s for r in requests), float, n)
    generated = np.fromiter((r.num_output_tokens for r in requests), np.int64, n)
    finished = np.fromiter((r.finished for r in requests), bool, n)
    error = np.array([r.fail_reason or "" for r in requests], dtype=object)
    late = finished & (end - arrival > timeout_s)
    error[late] = "timeout"
    success = finished & ~late
    ttft = first - arrival
    e2e = end - arrival
    tpot = np.where(success, (e2e - ttft) / np.maximum(1, generated - 1), np.nan)
    frame = pd.DataFrame(
        {
            "req_id": np.fromiter((r.req_id for r in requests), np.int64, n),
            "replica": np.fromiter((r.replica_id for r in requests), np.int64, n),
            "arrival_s": arrival,
            "prompt_tokens": np.fromiter((r.num_prompt_tokens for r in requests), np.int64, n),
            "requested_output_tokens": requested_output[:n],
            "output_tokens": np.where(success, generated, 0),
            "first_token_s": first,
            "end_s": end,
            "ttft_s": np.where(success, ttft, np.nan),
            "tpot_s": tpot,
            "e2e_s": np.where(success, e2e, np.nan),
            "num_preemptions": np.fromiter((r.num_preemptions for r in requests), np.int64, n),
            "recomputed_tokens": np.fromiter((r.num_recomputed_tokens for r in requests), np.int64, n),
            "attempts": np.fromiter((r.num_attempts for r in requests), np.int64, n),
            "cached_tokens": np.maximum(np.fromiter((r.num_cached_tokens for r in requests), np.int64, n), 0),
            "success": success,
            "error": error,
        }
    )
    return frame
