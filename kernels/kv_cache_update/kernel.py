"""KV-cache update as a Pallas TPU kernel: each new token's K and V rows (every KV head) are written into
their slot of the paged cache, in place (the caches are aliased input -> output, nothing else moves).

Grid: one step per block of tokens_per_step new tokens, which arrive through an ordinary BlockSpec. TPU
memory is tiled (8 or 16 rows x 128 lanes), so a DMA cannot land on one arbitrary row of a page: each write
reads the page into VMEM, replaces the row, and writes the page back. Slot -1 marks padding. The same write
can run inside the attention kernel instead (fused_update=True there), saving this launch.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from kernels.block_sizes import sublane_tile
from kernels.vmem import with_row


def _kernel(
    slots_ref,
    k_new,
    v_new,
    k_in,
    v_in,
    k_out,
    v_out,
    page_vmem,
    sems,
    *,
    tokens_per_step: int,
    page_size: int,
    num_kv_heads: int,
):
    del k_in, v_in  # aliased to k_out / v_out
    base = pl.program_id(0) * tokens_per_step
    for r in range(tokens_per_step):
        slot = slots_ref[base + r]

        @pl.when(slot >= 0)
        def _write(r=r, slot=slot):
            page, offset = jax.lax.div(slot, page_size), jax.lax.rem(slot, page_size)  # slot >= 0 here
            for h in range(num_kv_heads):
                for new, cache, i in ((k_new, k_out, 0), (v_new, v_out, 1)):
                    read = pltpu.make_async_copy(cache.at[h, page], page_vmem, sems.at[i])
                    read.start()
                    read.wait()
                    page_vmem[...] = with_row(page_vmem[...], offset, new[h], r)
                    write = pltpu.make_async_copy(page_vmem, cache.at[h, page], sems.at[i])
                    write.start()
                    write.wait()


@functools.partial(jax.jit, static_argnames=("tokens_per_step", "interpret"))
def kv_cache_update_kernel(
    k_new, v_new, k_pages, v_pages, slot_mapping, *, tokens_per_step: int = 16, interpret: bool = False
):
    """k_new, v_new: [num_tokens, num_kv_heads, head_dim]; returns the updated (k_pages, v_pages)."""
    t, hkv, d = k_new.shape
    if k_pages.shape[0] != hkv or k_pages.shape[-1] != d:
        raise ValueError(f"new tokens [{t}, {hkv}, {d}] do not match pages {k_pages.shape}")
    tile = sublane_tile(k_pages.dtype.itemsize)
    if tokens_per_step < 1 or tokens_per_step % tile:
        raise ValueError(
            f"tokens_per_step ({tokens_per_step}) must be a multiple of {tile} for "
            f"{8 * k_pages.dtype.itemsize}-bit caches (the TPU sublane tile)"
        )
    steps = -(-t // tokens_per_step)
    pad = steps * tokens_per_step - t
    slots = jnp.pad(slot_mapping.astype(jnp.int32), (0, pad), constant_values=-1)
    kn = jnp.pad(k_new.transpose(1, 0, 2), ((0, 0), (0, pad), (0, 0))).astype(k_pages.dtype)
    vn = jnp.pad(v_new.transpose(1, 0, 2), ((0, 0), (0, pad), (0, 0))).astype(v_pages.dtype)
    hbm = pl.BlockSpec(memory_space=pltpu.HBM)
    new_spec = pl.BlockSpec((hkv, tokens_per_step, d), lambda i, *_: (0, i, 0))
    kernel = functools.partial(
        _kernel, tokens_per_step=tokens_per_step, page_size=k_pages.shape[2], num_kv_heads=hkv
    )
    return pl.pallas_call(
        kernel,
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=1,
            grid=(steps,),
            in_specs=[new_spec, new_spec, hbm, hbm],
            out_specs=[hbm, hbm],
            scratch_shapes=[pltpu.VMEM((k_pages.shape[2], d), k_pages.dtype), pltpu.SemaphoreType.DMA((2,))],
        ),
        out_shape=[
            jax.ShapeDtypeStruct(k_pages.shape, k_pages.dtype),
            jax.ShapeDtypeStruct(v_pages.shape, v_pages.dtype),
        ],
        input_output_aliases={3: 0, 4: 1},
        compiler_params=pltpu.CompilerParams(dimension_semantics=("arbitrary",)),
        interpret=pltpu.InterpretParams() if interpret else False,
        name="servesim_kv_cache_update",
    )(slots, kn, vn, k_pages, v_pages)
