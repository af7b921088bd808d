"""Small VMEM operations the kernels share."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def with_row(page, offset, rows, r: int):
    """page ([page_size, head_dim]) with its row `offset` replaced by rows[r]. A whole-tile select rather
    than a one-row store: a store at a data-dependent row is not provably tile-aligned, which Mosaic refuses
    (bf16 rows are packed in pairs)."""
    row = jax.lax.slice(rows, (r, 0), (r + 1, rows.shape[1])).astype(jnp.float32)
    at = jax.lax.broadcasted_iota(jnp.int32, page.shape, 0) == offset
    return jnp.where(at, jnp.broadcast_to(row, page.shape), page.astype(jnp.float32)).astype(page.dtype)
