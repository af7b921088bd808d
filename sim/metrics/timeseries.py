"""Time-windowed series of a run: what arrived, what finished, what was good, and the fleet's state.

Counts (arrivals, completions, good completions, failures) are exact per window, from the request table.
State (waiting, running, KV blocks in use) is sampled at the end of every window (sim/fleet/sampler.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

_MAX_WINDOWS = 2000


def choose_window_s(horizon_s: float, requested: float | None) -> float:
    """1 s by default, coarser for long runs so that there are at most ~2000 windows."""
    if requested is not None:
        return requested
    return float(max(1, math.ceil(horizon_s / _MAX_WINDOWS)))


@dataclass
class FleetSamples:
    """The fleet's state at the end of every window (sim/fleet/sampler.py takes them)."""

    window_s: float
    times: list[float] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)  # in replica queues and the router's hold queue
    running: list[int] = field(default_factory=list)
    kv_used_frac: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # cumulative real tokens computed, fleet-wide
    padding_tokens: list[int] = field(default_factory=list)  # cumulative padding tokens
    desired: list[int] = field(default_factory=list)  # replicas the controller wants
    ready: list[int] = field(default_factory=list)
    starting: list[int] = field(default_factory=list)


def _counts(times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    times = times[np.isfinite(times)]
    return np.histogram(times, bins=edges)[0] if len(edges) > 1 else np.zeros(0, dtype=np.int64)


def build_timeseries(
    table: pd.DataFrame,
    good: np.ndarray,
    sampler: FleetSamples,
    end_s: float,
    stalls: Sequence[tuple[float, float]] = (),
) -> pd.DataFrame:
    """stalls: (end time, seconds) of every step that compiled a shape on the spot, any replica."""
    w = sampler.window_s
    num_windows = max(1, math.ceil(end_s / w)) if end_s > 0 else 1
    edges = np.arange(num_windows + 1) * w
    ok = table["success"].to_numpy()
    end = table["end_s"].to_numpy()
    first = table["first_token_s"].to_numpy()
    frame = pd.DataFrame(
        {
            "t_start_s": edges[:-1],
            "t_end_s": edges[1:],
            "arrivals": _counts(table["arrival_s"].to_numpy(), edges),
            "completions": _counts(end[ok], edges),
            "good_completions": _counts(end[good], edges),
            "failures": _counts(end[~ok], edges),
        }
    )
    frame["goodput_rps"] = frame["good_completions"] / w
    frame["arrival_rate_rps"] = frame["arrivals"] / w
    # TTFT of the requests whose first token came out in the window.
    ttft = table["ttft_s"].to_numpy()
    idx = np.floor(first[ok] / w).astype(np.int64)
    groups = pd.Series(ttft[ok] * 1e3).groupby(np.clip(idx, 0, num_windows - 1))
    frame["ttft_p50_ms"] = groups.median().reindex(range(num_windows)).to_numpy()
    frame["ttft_p99_ms"] = groups.quantile(0.99).reindex(range(num_windows)).to_numpy()
    if "cached_tokens" in table:  # prefix-cache hit rate of the prompts whose first token came out then
        window = np.clip(idx, 0, num_windows - 1)
        cached = np.bincount(window, table["cached_tokens"].to_numpy()[ok], minlength=num_windows)
        prompt = np.bincount(window, table["prompt_tokens"].to_numpy()[ok], minlength=num_windows)
        with np.errstate(invalid="ignore", divide="ignore"):
            frame["prefix_hit_rate"] = np.where(prompt > 0, cached / np.maximum(prompt, 1), np.nan)
    # Sampled state at each window's end (NaN past the last sample).
    samples = len(sampler.times)
    for name, values in (
        ("waiting", sampler.waiting),
        ("running", sampler.running),
        ("kv_used_frac", sampler.kv_used_frac),
        ("replicas_desired", sampler.desired),
        ("replicas_ready", sampler.ready),
        ("replicas_starting", sampler.starting),
    ):
        column = np.full(num_windows, np.nan)
        column[: min(samples, num_windows)] = values[:num_windows]
        frame[name] = column
    # Per-window work from the cumulative counters: padding waste.
    for name, values in (
        ("tokens", sampler.tokens),
        ("padding_tokens", sampler.padding_tokens),
    ):
        column = np.full(num_windows, np.nan)
        cumulative = np.asarray(values[:num_windows], dtype=float)
        column[: len(cumulative)] = np.diff(np.concatenate([[0.0], cumulative]))
        frame[name] = column
    # Compile stalls of the steps that ended in the window.
    stall_at = np.asarray([t for t, _ in stalls], dtype=float)
    stall_s = np.asarray([s for _, s in stalls], dtype=float)
    frame["compile_stall_s"] = (
        np.histogram(stall_at, bins=edges, weights=stall_s)[0] if len(edges) > 1 else np.zeros(0)
    )
    total = frame["tokens"] + frame["padding_tokens"]
    frame["padding_frac"] = np.where(total > 0, frame["padding_tokens"] / total.where(total > 0, 1), 0.0)
    return frame
