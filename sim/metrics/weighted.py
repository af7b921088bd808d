"""Percentiles of a distribution given as (value, count) pairs, identical to np.percentile (linear
interpolation) on the expanded list -- without expanding it. Pooled ITL has one value per token; storing
them would cost memory linear in tokens, while steps x counts is linear in steps."""

from __future__ import annotations

import numpy as np


def weighted_percentiles(values: np.ndarray, counts: np.ndarray, qs: list[float]) -> list[float]:
    """np.percentile(np.repeat(values, counts), qs) computed from the pairs; 0.0 for an empty list."""
    values = np.asarray(values, dtype=float)
    counts = np.asarray(counts, dtype=np.int64)
    keep = counts > 0
    values, counts = values[keep], counts[keep]
    total = int(counts.sum())
    if total == 0:
        return [0.0 for _ in qs]
    order = np.argsort(values, kind="stable")
    values, counts = values[order], counts[order]
    cum = np.cumsum(counts)  # cum[j] = number of elements with rank < cum[j]

    def at_rank(rank: int) -> float:
        return float(values[np.searchsorted(cum, rank, side="right")])

    out = []
    for q in qs:
        pos = q / 100.0 * (total - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, total - 1)
        lo_v, hi_v = at_rank(lo), at_rank(hi)
        out.append(lo_v + (pos - lo) * (hi_v - lo_v))
    return out


def weighted_mean(values: np.ndarray, counts: np.ndarray) -> float:
    total = counts.sum()
    return float((values * counts).sum() / total) if total else 0.0
