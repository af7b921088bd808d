"""Measured requests in the simulator's own table form, so one `summarize` computes both sides."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.live.loadgen import LoadResult


def measured_table(result: LoadResult) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(request table, pooled ITL values, counts) of a load-generator run, in request_table's columns.
    Pass result.duration_s to summarize(): the harness's duration ends when the last task returns."""
    recs = result.records
    ok = np.array([r.success for r in recs], dtype=bool)
    start = np.array([r.start_wall for r in recs])
    ttft = np.array([r.ttft for r in recs])
    e2e = np.array([r.e2e_latency for r in recs])
    table = pd.DataFrame(
        {
            "req_id": np.arange(len(recs)),
            "arrival_s": start,
            "prompt_tokens": [r.prompt_len for r in recs],
            "requested_output_tokens": [r.requested_output_len for r in recs],
            "output_tokens": np.where(ok, [r.generated_tokens for r in recs], 0),
            "first_token_s": np.where(ok, start + ttft, np.nan),
            "end_s": np.where(ok, start + e2e, np.nan),
            "ttft_s": np.where(ok, ttft, np.nan),
            "tpot_s": np.where(ok, [r.tpot for r in recs], np.nan),
            "e2e_s": np.where(ok, e2e, np.nan),
            "success": ok,
            "error": [r.error or "" for r in recs],
        }
    )
    itl = np.array([g for r in recs if r.success for g in r.itl], dtype=float)
    return table, itl, np.ones(len(itl), dtype=np.int64)
