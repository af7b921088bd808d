"""Shape lists: XLA token and request buckets (tpu-inference), CUDA-graph capture sizes (vLLM).

Rules as documented in docs/references.md:
- token buckets ("TPU buckets"): powers of two from the minimum (16) up to the first power of two >= the budget; with
  a padding gap, doubling up to the gap and then growing linearly by it; extra sizes merged and sorted.
- request buckets ("TPU buckets"): powers of two from 8, the last entry capped at max_num_seqs.
- CUDA-graph capture sizes ("CUDA graphs", vLLM v0.33): [1, 2, 4] + range(8, 256, 8) + range(256, max + 1, 16) with
  max = min(2 x max_num_seqs, 512); max_num_batched_tokens is added if it fits under max.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

MIN_TOKEN_BUCKET = 16  # tpu-inference envs.MIN_TOKEN_BUCKET default
MIN_NUM_SEQS = 8  # tpu-inference runner/utils.MIN_NUM_SEQS


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def token_buckets(
    max_num_batched_tokens: int,
    *,
    padding_gap: int = 0,
    min_bucket: int = MIN_TOKEN_BUCKET,
    extra: Iterable[int] = (),
) -> list[int]:
    buckets: list[int] = []
    size = min_bucket
    if padding_gap <= 0:
        while True:
            buckets.append(size)
            if size >= max_num_batched_tokens:
                break
            size *= 2
    else:
        while size < padding_gap:
            buckets.append(size)
            size *= 2
        size = padding_gap
        while True:
            buckets.append(size)
            if size >= max_num_batched_tokens:
                break
            size += padding_gap
    return sorted(set(buckets) | set(extra))


def request_buckets(max_num_seqs: int) -> list[int]:
    buckets = []
    size = max(MIN_NUM_SEQS, 1)
    while size < max_num_seqs:
        buckets.append(size)
        size *= 2
    buckets.append(max(max_num_seqs, MIN_NUM_SEQS))
    return buckets


def cuda_graph_capture_sizes(
    max_num_seqs: int, max_num_batched_tokens: int, max_size: int | None = None
) -> list[int]:
    top = max_size if max_size is not None else min(2 * max_num_seqs, 512)
    sizes = [1, 2, 4, *range(8, 256, 8), *range(256, top + 1, 16)]
    sizes = [s for s in sizes if s <= top]
    if max_num_batched_tokens <= top:
        sizes.append(max_num_batched_tokens)
    return sorted(set(sizes))


def padding_to(buckets: list[int], n: int) -> int:
    """Rows added to reach the first bucket >= n; n must not exceed the largest bucket."""
    size = pad_to(buckets, n)
    if size is None:
        raise AssertionError(f"{n} exceeds the largest bucket ({buckets[-1] if buckets else 'none'})")
    return size - n


def pad_to(buckets: list[int], n: int) -> int | None:
    """The first bucket >= n, or None when n exceeds every bucket."""
    i = bisect_left(buckets, n)
    return buckets[i] if i < len(buckets) else None
