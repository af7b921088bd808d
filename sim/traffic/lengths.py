"""Prompt and output lengths (tokens) for n requests, from a distribution or a local dataset."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from sim.errors import InputError
from sim.traffic.spec import (
    FixedLengths,
    LognormalLengths,
    RandomLengths,
    ShareGPTFileLengths,
    ShareGPTLikeLengths,
)

_FIELD = "workload.lengths"


def _lognormal_ints(
    rng: np.random.Generator, mean: float, sigma: float, n: int, lo: int, hi: int
) -> np.ndarray:
    """Log-normal draws with the given *mean* (mu = ln(mean) - sigma^2/2), rounded and clipped to [lo, hi]."""
    mu = np.log(mean) - sigma**2 / 2
    return np.clip(np.rint(rng.lognormal(mu, sigma, n)), lo, hi).astype(np.int64)


def _uniform_around(rng: np.random.Generator, length: int, ratio: float, n: int) -> np.ndarray:
    lo = max(1, int(np.floor(length * (1 - ratio))))
    hi = max(lo, int(np.ceil(length * (1 + ratio))))
    return rng.integers(lo, hi + 1, size=n, dtype=np.int64)


def _sharegpt_pairs(spec: ShareGPTFileLengths, seed: int) -> list[tuple[int, int]]:
    """(prompt, completion) lengths, built the way the seed harness builds its ShareGPT workload."""
    path = Path(spec.path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such ShareGPT file: {path}", f"{_FIELD}.path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read ShareGPT JSON {path}: {exc}", f"{_FIELD}.path") from None
    if not isinstance(data, list):
        raise InputError(f"{path} must hold a JSON list of conversations", f"{_FIELD}.path")
    pairs = []
    for item in data:
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            continue
        first, second = turns[0], turns[1]
        if not (isinstance(first, dict) and isinstance(second, dict)):
            continue
        if first.get("from") not in ("human", "user"):
            continue
        prompt = max(1, round(len(str(first.get("value", ""))) / spec.chars_per_token))
        completion = max(1, round(len(str(second.get("value", ""))) / spec.chars_per_token))
        if 4 <= prompt <= spec.max_prompt_len:
            pairs.append((prompt, spec.fixed_output_len or completion))
    if not pairs:
        raise InputError(
            f"{path} has no conversation that passes the 4..{spec.max_prompt_len}-token filter",
            f"{_FIELD}.path",
        )
    random.Random(seed).shuffle(pairs)
    return pairs


def sample_lengths(spec, n: int, rng: np.random.Generator, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (prompt_tokens, output_tokens, note) for n requests; note says how they were obtained."""
    if isinstance(spec, FixedLengths):
        return (np.full(n, spec.input_len, np.int64), np.full(n, spec.output_len, np.int64), "fixed lengths")
    if isinstance(spec, RandomLengths):
        return (
            _uniform_around(rng, spec.input_len, spec.range_ratio, n),
            _uniform_around(rng, spec.output_len, spec.range_ratio, n),
            f"uniform within +/-{spec.range_ratio:.0%} (vllm bench serve 'random')",
        )
    if isinstance(spec, LognormalLengths):
        return (
            _lognormal_ints(
                rng, spec.input_mean, spec.input_sigma, n, spec.min_input_len, spec.max_input_len
            ),
            _lognormal_ints(
                rng, spec.output_mean, spec.output_sigma, n, spec.min_output_len, spec.max_output_len
            ),
            "log-normal lengths",
        )
    if isinstance(spec, ShareGPTLikeLengths):
        return (
            _lognormal_ints(rng, spec.input_mean, spec.input_sigma, n, 4, spec.max_prompt_len),
            _lognormal_ints(rng, spec.output_mean, spec.output_sigma, n, 1, spec.max_output_len),
            "ShareGPT-like log-normal (means from the seed talk; sigmas estimated)",
        )
    if isinstance(spec, ShareGPTFileLengths):
        pairs = _sharegpt_pairs(spec, seed)
        chosen = [pairs[i % len(pairs)] for i in range(n)]
        arr = np.array(chosen, dtype=np.int64).reshape(-1, 2)
        reuse = " (reused cyclically: fewer pairs than requests)" if n > len(pairs) else ""
        return (
            arr[:, 0],
            arr[:, 1],
            f"ShareGPT file, ~{spec.chars_per_token:g} chars/token approximation{reuse}",
        )
    raise TypeError(f"unsupported length spec {type(spec).__name__}")
