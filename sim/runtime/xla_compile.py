"""What tpu-inference compiles, and how long XLA takes (docs/references.md#tpu-precompile and #compile-and-warm-up-times).

Precompile (runner/compilation_manager.py:capture_model) compiles, for every shape combination:
  backbone (model forward):  token buckets x attention request buckets (default: just [max_num_seqs])
  select_from_array:         token buckets x request buckets, pairs with requests <= tokens
  compute_logits:            request buckets
  sample:                    request buckets x do_sampling {T, F} x logprobs {T, F}
  gather_logprobs:           request buckets
Compile time model: a backbone bucket costs `backbone_s`, each small function `small_s`; a warm persistent
cache costs `warm_fraction` of cold. Without a measured profile, backbone_s is derived from the one
published end-to-end figure (Llama-3.1-8B warm-up: 2 min, tpu-inference PR #175): the small functions at
0.1 s each are subtracted and the rest spread evenly over that configuration's backbone buckets, then scaled
by layer count (layers are traced unrolled, so compile work grows with depth -- an estimate).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.runtime.buckets import request_buckets, token_buckets

SAMPLE_VARIANTS = 4  # do_sampling x logprobs


def num_small_functions(tokens: list[int], requests: list[int]) -> int:
    selects = sum(1 for t in tokens for r in requests if r <= t)
    return selects + len(requests) * (1 + SAMPLE_VARIANTS + 1)


@dataclass(frozen=True)
class XlaCompileTimes:
    backbone_s: float  # one backbone (token bucket) compile, cold, where no per-bucket figure exists
    small_s: float  # one small function compile, cold
    warm_fraction: float  # cached / cold
    source: str
    measured_cold: dict[int, float] | None = None  # token bucket -> measured cold compile (a profile)
    measured_warm: dict[int, float] | None = None  # token bucket -> measured warm compile

    def backbone(self, bucket: int, cache: str) -> float:
        """Compile time of one backbone bucket: measured where the profile has it, else interpolated over
        log2(bucket) between measured buckets (clamped at the ends), else the derived default."""
        if cache == "warm" and self.measured_warm:
            return _interpolate(self.measured_warm, bucket)
        cold = _interpolate(self.measured_cold, bucket) if self.measured_cold else self.backbone_s
        return cold * (self.warm_fraction if cache == "warm" else 1.0)

    def small(self, cache: str) -> float:
        return self.small_s * (self.warm_fraction if cache == "warm" else 1.0)


def _interpolate(table: dict[int, float], bucket: int) -> float:
    import math

    import numpy as np

    keys = sorted(table)
    return float(np.interp(math.log2(bucket), [math.log2(k) for k in keys], [table[k] for k in keys]))


def derive_backbone_s(defaults: dict, num_layers: int) -> float:
    anchor = defaults["anchor_config"]["value"]
    tokens = token_buckets(anchor["max_num_batched_tokens"])
    requests = request_buckets(anchor["max_num_seqs"])
    small = num_small_functions(tokens, requests) * defaults["small_function_compile_s"]["value"]
    per_bucket = (defaults["anchor_warmup_s"]["value"] - small) / len(tokens)
    return per_bucket * num_layers / anchor["num_layers"]


def precompile_seconds(
    times: XlaCompileTimes,
    tokens: list[int],
    requests: list[int],
    attn_requests: list[int],
    cache: str,
    workers: int,
) -> float:
    """Wall time of the startup precompile: the sum of its compiles, shared among the workers."""
    backbones = sum(times.backbone(t, cache) for t in tokens) * len(attn_requests)
    total = backbones + times.small(cache) * num_small_functions(tokens, requests)
    return total / workers
