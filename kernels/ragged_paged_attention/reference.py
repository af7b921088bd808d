"""Ragged paged attention in plain jnp: the definition the kernel is tested against.

Written for clarity, not speed: every query gathers its sequence's whole page list, so memory grows with
num_tokens x pages_per_seq x page_size. Softmax in float32 whatever the input dtype.
"""

from __future__ import annotations

import jax.numpy as jnp

from kernels.layout import check_shapes

MASKED = -1e30  # a finite "minus infinity": fully masked rows stay NaN-free


def ragged_paged_attention_reference(
    q,
    k_pages,
    v_pages,
    kv_lens,
    page_indices,
    cu_q_lens,
    num_seqs,
    *,
    sm_scale: float | None = None,
    sliding_window: int | None = None,
    soft_cap: float | None = None,
):
    """Returns [num_tokens, num_q_heads, head_dim]; rows past cu_q_lens[num_seqs] are zero."""
    shape = check_shapes(q, k_pages, v_pages, kv_lens, page_indices, cu_q_lens, num_seqs)
    t, hq, d = q.shape
    hkv, g = shape.num_kv_heads, shape.group
    scale = d**-0.5 if sm_scale is None else sm_scale
    tokens = jnp.arange(t)
    seq = jnp.clip(jnp.searchsorted(cu_q_lens, tokens, side="right") - 1, 0, shape.max_num_seqs - 1)
    in_use = tokens < cu_q_lens[num_seqs[0]]
    q_len = cu_q_lens[seq + 1] - cu_q_lens[seq]
    pos = kv_lens[seq] - q_len + (tokens - cu_q_lens[seq])  # absolute position of each query
    # Each token's sequence laid out flat: [num_kv_heads, num_tokens, pages_per_seq * page_size, head_dim]
    length = shape.pages_per_seq * shape.page_size
    k = k_pages[:, page_indices[seq]].reshape(hkv, t, length, d).astype(jnp.float32)
    v = v_pages[:, page_indices[seq]].reshape(hkv, t, length, d).astype(jnp.float32)
    qg = q.reshape(t, hkv, g, d).astype(jnp.float32)
    scores = jnp.einsum("thgd,htld->thgl", qg, k) * scale
    if soft_cap is not None:
        scores = soft_cap * jnp.tanh(scores / soft_cap)
    kv_pos = jnp.arange(length)
    mask = (kv_pos[None, :] <= pos[:, None]) & (kv_pos[None, :] < kv_lens[seq][:, None])
    if sliding_window is not None:
        mask &= kv_pos[None, :] > pos[:, None] - sliding_window
    mask &= in_use[:, None]
    scores = jnp.where(mask[:, None, None, :], scores, MASKED)
    weights = jnp.exp(scores - scores.max(axis=-1, keepdims=True)) * mask[:, None, None, :]
    denom = weights.sum(axis=-1, keepdims=True)
    out = jnp.einsum("thgl,htld->thgd", weights, v) / jnp.where(denom > 0, denom, 1.0)
    return out.reshape(t, hq, d).astype(q.dtype)
