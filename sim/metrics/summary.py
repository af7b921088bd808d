"""The run summary, key for key as the seed harness's `summarize` writes it (docs/references.md#seed-harness).

- Latencies in ms; mean, median, p90, p95, p99, max via np.percentile's linear interpolation; 0.0 when empty.
- TTFT, TPOT, E2E: one value per successful request. ITL: pooled over all tokens of successful requests.
- duration_s: from t=0 (the first inter-arrival gap included) until the last request ended.
- Goodput (DistServe): a successful request is good iff TTFT <= ttft_slo and TPOT <= tpot_slo (inclusive),
  and E2E <= e2e_slo when one is set. goodput_rps = good / duration.
- slo_attainment = good / successful (the harness's definition); slo_attainment_all = good / all requests
  sent, failures counted as missed (what capacity planning and failover risk judge by). docs/metrics.md
  defines every key.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.metrics.slo import SLO
from sim.metrics.weighted import weighted_mean, weighted_percentiles

PERCENTILES = {"median": 50, "p90": 90, "p95": 95, "p99": 99}


def _stats(name: str, values_ms: np.ndarray) -> dict[str, float]:
    if len(values_ms) == 0:
        return {f"{name}_{k}": 0.0 for k in ("mean", *PERCENTILES, "max")}
    pcts = np.percentile(values_ms, list(PERCENTILES.values()))
    out = {f"{name}_mean": float(np.mean(values_ms))}
    out.update({f"{name}_{k}": float(v) for k, v in zip(PERCENTILES, pcts, strict=True)})
    out[f"{name}_max"] = float(np.max(values_ms))
    return out


def _weighted_stats(name: str, values_ms: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    pcts = weighted_percentiles(values_ms, counts, list(PERCENTILES.values()))
    out = {f"{name}_mean": weighted_mean(values_ms, counts)}
    out.update({f"{name}_{k}": float(v) for k, v in zip(PERCENTILES, pcts, strict=True)})
    out[f"{name}_max"] = float(values_ms[counts > 0].max()) if (counts > 0).any() else 0.0
    return out


def _hit_rate(done: pd.DataFrame) -> float:
    """Prompt tokens found in the prefix cache / prompt tokens, over completed requests (vLLM's
    prefix_cache_hits / prefix_cache_queries, counted at each request's first admission)."""
    if "cached_tokens" not in done or not len(done):
        return 0.0
    prompt = float(done["prompt_tokens"].sum())
    return float(done["cached_tokens"].sum()) / prompt if prompt else 0.0


def good_mask(table: pd.DataFrame, slo: SLO) -> np.ndarray:
    ok = table["success"].to_numpy()
    good = (
        ok
        & (table["ttft_s"].to_numpy() * 1e3 <= slo.ttft_ms)
        & (table["tpot_s"].to_numpy() * 1e3 <= slo.tpot_ms)
    )
    if slo.e2e_ms is not None:
        good &= table["e2e_s"].to_numpy() * 1e3 <= slo.e2e_ms
    return good


def summarize(
    table: pd.DataFrame,
    itl_values_s: np.ndarray,
    itl_counts: np.ndarray,
    slo: SLO,
    duration_s: float | None = None,
) -> dict:
    """duration_s: given for measured runs (t0 until the last request returned); simulated runs end when
    the last request ends."""
    ok = table["success"].to_numpy()
    done = table[ok]
    n_ok = int(ok.sum())
    ended = table["end_s"].to_numpy()
    if duration_s is not None:
        duration = duration_s
    else:
        duration = float(np.nanmax(ended)) if len(table) and np.isfinite(ended).any() else 0.0
    out_tokens = int(done["output_tokens"].sum())
    in_tokens = int(done["prompt_tokens"].sum())
    per_s = (lambda x: x / duration) if duration > 0 else (lambda x: 0.0)
    summary: dict = {
        "completed": n_ok,
        "total_requested": len(table),
        "failures": len(table) - n_ok,
        "duration_s": duration,
        "request_throughput_rps": per_s(n_ok),
        "output_throughput_tok_s": per_s(out_tokens),
        "total_token_throughput_tok_s": per_s(in_tokens + out_tokens),
        "mean_input_tokens": float(done["prompt_tokens"].mean()) if n_ok else 0.0,
        "prefix_cache_hit_rate": _hit_rate(done),
        "mean_output_tokens": float(done["output_tokens"].mean()) if n_ok else 0.0,
    }
    summary.update(_stats("ttft_ms", done["ttft_s"].to_numpy() * 1e3))
    summary.update(_stats("tpot_ms", done["tpot_s"].to_numpy() * 1e3))
    summary.update(_weighted_stats("itl_ms", itl_values_s * 1e3, itl_counts))
    summary.update(_stats("e2e_ms", done["e2e_s"].to_numpy() * 1e3))
    good = int(good_mask(table, slo).sum())
    summary.update(
        {
            "ttft_slo_ms": slo.ttft_ms,
            "tpot_slo_ms": slo.tpot_ms,
            "good_requests": good,
            "goodput_rps": per_s(good),
            "slo_attainment": good / n_ok if n_ok else 0.0,
            "slo_attainment_all": good / len(table) if len(table) else 0.0,
        }
    )
    if slo.e2e_ms is not None:
        summary["e2e_slo_ms"] = slo.e2e_ms
    return summary
