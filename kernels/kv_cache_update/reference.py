"""KV-cache update in plain jnp: write each new token's K and V into its slot (page * page_size + offset).
A slot of -1 marks a padding token and writes nothing."""

from __future__ import annotations

import jax.numpy as jnp


def kv_cache_update_reference(k_new, v_new, k_pages, v_pages, slot_mapping):
    """k_new, v_new: [num_tokens, num_kv_heads, head_dim]; returns the updated (k_pages, v_pages)."""
    hkv, pages, page_size, d = k_pages.shape
    flat = pages * page_size
    slots = jnp.where(slot_mapping < 0, flat, slot_mapping)  # out of range -> dropped

    def scatter(cache, new):
        rows = (
            cache.reshape(hkv, flat, d)
            .at[:, slots]
            .set(new.transpose(1, 0, 2).astype(cache.dtype), mode="drop")
        )
        return rows.reshape(hkv, pages, page_size, d)

    return scatter(k_pages, k_new), scatter(v_pages, v_new)
