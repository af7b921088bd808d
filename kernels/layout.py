"""The paged KV cache and the ragged batch, as every kernel and reference here takes them.

  q             [num_tokens, num_q_heads, head_dim]   all sequences' new tokens, packed back to back
  k_pages       [num_kv_heads, num_pages, page_size, head_dim]   (v_pages alike)
  kv_lens       i32[max_num_seqs]   tokens in each sequence's cache, the new ones included
  page_indices  i32[max_num_seqs, pages_per_seq]   page table: the j-th page of sequence s
  cu_q_lens     i32[max_num_seqs + 1]   sequence s owns q rows cu_q_lens[s] .. cu_q_lens[s+1] - 1
  num_seqs      i32[1]   sequences in use (the rest of the arrays is padding)

A decode has one query token, a prefill chunk many; query i of sequence s sits at absolute position
kv_lens[s] - q_len(s) + i and attends causally to positions <= its own (and, with a sliding window W, to
positions > its own - W). GQA: query head j reads KV head j // (num_q_heads // num_kv_heads).
Head-major pages keep one head's page contiguous (page_size x head_dim), the unit a kernel copies.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AttentionShape:
    num_tokens: int
    num_q_heads: int
    num_kv_heads: int
    head_dim: int
    num_pages: int
    page_size: int
    max_num_seqs: int
    pages_per_seq: int

    @property
    def group(self) -> int:
        return self.num_q_heads // self.num_kv_heads


def check_shapes(q, k_pages, v_pages, kv_lens, page_indices, cu_q_lens, num_seqs) -> AttentionShape:
    """Static checks with both values in each message; raises ValueError."""
    if q.ndim != 3:
        raise ValueError(f"q must be [num_tokens, num_q_heads, head_dim], got shape {q.shape}")
    if k_pages.ndim != 4 or k_pages.shape != v_pages.shape:
        raise ValueError(
            f"k_pages and v_pages must be equal 4-D arrays, got {k_pages.shape} and {v_pages.shape}"
        )
    t, hq, d = q.shape
    hkv, pages, page_size, dk = k_pages.shape
    if dk != d:
        raise ValueError(f"head_dim of q ({d}) and of the pages ({dk}) differ")
    if hq % hkv:
        raise ValueError(f"num_q_heads ({hq}) must be a multiple of num_kv_heads ({hkv})")
    if page_indices.ndim != 2:
        raise ValueError(f"page_indices must be [max_num_seqs, pages_per_seq], got {page_indices.shape}")
    s = page_indices.shape[0]
    if kv_lens.shape != (s,):
        raise ValueError(f"kv_lens must have shape ({s},) like page_indices' rows, got {kv_lens.shape}")
    if cu_q_lens.shape != (s + 1,):
        raise ValueError(f"cu_q_lens must have shape ({s + 1},), got {cu_q_lens.shape}")
    if num_seqs.shape != (1,):
        raise ValueError(f"num_seqs must have shape (1,), got {num_seqs.shape}")
    return AttentionShape(t, hq, hkv, d, pages, page_size, s, page_indices.shape[1])
