"""Ragged paged attention as a Pallas TPU kernel.

Work is *ragged*: the wrapper cuts each sequence's query rows into blocks of block_q tokens and lists the
blocks back to back (a decode is one block of one token; a 300-token prefill chunk with block_q 32 is ten).
The grid is (KV head, work item, KV block):

  for each KV head h                                        (parallel)
    for each work item w = (sequence s, query block b)      (arbitrary: the fused cache write relies on order)
      at the first KV block: copy the block's query rows (all q heads of h) into VMEM; with fused update,
        first write the block's new K/V tokens into their pages
      for each KV block of s (pages_per_block pages)        (arbitrary: online softmax carries across it)
        skipped when causally or window-invisible to every query of the block
        copy the pages into VMEM (page ids from the scalar-prefetched page table), then
        scores = q k^T * scale -> soft cap -> causal / length / window mask -> online softmax update
      at the last KV block: out = acc / sum

Pages stay in HBM and move by DMA at page ids read from the scalar-prefetched page table. Query rows (and,
for the fused update, the new K/V rows) are gathered by the wrapper into work-item order --
[KV heads, work items, rows, head_dim] -- and enter through ordinary BlockSpecs: TPU memory is tiled
(8 or 16 rows x 128 lanes), so a DMA cannot start at an arbitrary token row, and a one-block gather costs
little next to the attention itself. The output comes back in the same order and the wrapper scatters it
to [tokens, q heads, head_dim]. A fused cache write rewrites whole pages (read the page, replace the row in
VMEM, write it back) for the same tiling reason. Copies are synchronous (start all, wait all): no double
buffering yet -- the first thing to add when a TPU profile shows DMA waits.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from kernels.block_sizes import BlockSizes
from kernels.layout import check_shapes
from kernels.vmem import with_row

MASKED = -1e30


def work_list(cu_q_lens, num_seqs, block_q: int, max_work: int):
    """(sequence, query block, valid) of every work item, padded to max_work with invalid items."""
    max_seqs = cu_q_lens.shape[0] - 1
    q_lens = cu_q_lens[1:] - cu_q_lens[:-1]
    in_use = jnp.arange(max_seqs) < num_seqs[0]
    blocks = jnp.where(in_use, (q_lens + block_q - 1) // block_q, 0)
    ends = jnp.cumsum(blocks)
    w = jnp.arange(max_work)
    seq = jnp.clip(jnp.searchsorted(ends, w, side="right", method="compare_all"), 0, max_seqs - 1)
    qblock = w - (ends[seq] - blocks[seq])
    valid = w < ends[-1]
    return seq.astype(jnp.int32), jnp.where(valid, qblock, 0).astype(jnp.int32), valid.astype(jnp.int32)


def _kernel(
    # scalar prefetch (SMEM)
    kv_lens_ref,
    pages_ref,  # flattened page table
    cu_q_ref,
    wseq_ref,
    wblock_ref,
    wvalid_ref,
    slots_ref,  # fused update: slot of each work item's tokens, [max_work * block_q] (-1 = none)
    # inputs
    q_ref,  # VMEM block [rows, D]: the work item's query rows for KV head h
    k_hbm,  # HBM
    v_hbm,
    k_new_ref,  # VMEM block [block_q, D]: the work item's new K rows for KV head h (fused update only)
    v_new_ref,
    # outputs
    o_ref,  # VMEM block [rows, D] of o[h, w]
    *refs,  # fused update: the caches as outputs (aliased to k_hbm / v_hbm), then scratch; else scratch
    block_q: int,
    group: int,
    page_size: int,
    pages_per_block: int,
    pages_per_seq: int,
    sm_scale: float,
    sliding_window: int | None,
    soft_cap: float | None,
    fused_update: bool,
):
    if fused_update:
        k_out, v_out, *rest = refs
        scratch = tuple(rest)
    else:
        k_out, v_out, scratch = k_hbm, v_hbm, tuple(refs)  # read-only: the caches are not outputs at all
    k_vmem, v_vmem, page_vmem, m_ref, l_ref, acc_ref, sems = scratch
    h, w, kb = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    rows = block_q * group
    kv_block = pages_per_block * page_size
    seq = wseq_ref[w]
    valid = wvalid_ref[w] == 1
    q_start = cu_q_ref[seq]
    q_len = cu_q_ref[seq + 1] - q_start
    kv_len = kv_lens_ref[seq]
    first_row = wblock_ref[w] * block_q  # within the sequence
    num_rows = jnp.minimum(block_q, q_len - first_row)
    pos0 = kv_len - q_len + first_row  # absolute position of the block's first query
    last_pos = pos0 + num_rows - 1
    kv_start = kb * kv_block

    @pl.when(kb == 0)
    def _start():
        m_ref[...] = jnp.full_like(m_ref, MASKED)
        l_ref[...] = jnp.zeros_like(l_ref)
        acc_ref[...] = jnp.zeros_like(acc_ref)

        if fused_update:

            @pl.when(valid)
            def _write_new_tokens():
                # Write this block's new tokens into their pages before anything reads them. Earlier blocks
                # of the sequence wrote theirs at earlier work items (the work axis runs in order).
                for r in range(block_q):
                    slot = slots_ref[w * block_q + r]

                    @pl.when(slot >= 0)
                    def _write(r=r, slot=slot):
                        page, offset = jax.lax.div(slot, page_size), jax.lax.rem(slot, page_size)
                        for new, cache, i in ((k_new_ref, k_out, 0), (v_new_ref, v_out, 1)):
                            read = pltpu.make_async_copy(cache.at[h, page], page_vmem, sems.at[i])
                            read.start()
                            read.wait()
                            page_vmem[...] = with_row(page_vmem[...], offset, new[...], r)
                            write = pltpu.make_async_copy(page_vmem, cache.at[h, page], sems.at[i])
                            write.start()
                            write.wait()

    visible = valid & (kv_start <= last_pos) & (kv_start < kv_len)
    if sliding_window is not None:
        visible &= kv_start + kv_block - 1 > pos0 - sliding_window

    @pl.when(visible)
    def _attend():
        k_src = k_out if fused_update else k_hbm
        v_src = v_out if fused_update else v_hbm
        copies = []
        for j in range(pages_per_block):
            slot = jnp.minimum(kb * pages_per_block + j, pages_per_seq - 1)
            page = pages_ref[seq * pages_per_seq + slot]
            for src, dst, i in ((k_src, k_vmem, 0), (v_src, v_vmem, 1)):
                copies.append(
                    pltpu.make_async_copy(
                        src.at[h, page], dst.at[pl.ds(j * page_size, page_size)], sems.at[3 + i]
                    )
                )
        for c in copies:
            c.start()
        for c in copies:
            c.wait()
        q = q_ref[...]
        k = k_vmem[...]
        s = jax.lax.dot_general(q, k, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32) * sm_scale
        if soft_cap is not None:
            s = soft_cap * jnp.tanh(s / soft_cap)
        # lax.div, not //: operands are >= 0, and floor division's sign fix-up asks which TPU it runs on
        row = jax.lax.div(jax.lax.broadcasted_iota(jnp.int32, (rows, kv_block), 0), jnp.int32(group))
        q_pos = pos0 + row
        kv_pos = kv_start + jax.lax.broadcasted_iota(jnp.int32, (rows, kv_block), 1)
        mask = (kv_pos <= q_pos) & (kv_pos < kv_len) & (row < num_rows)
        if sliding_window is not None:
            mask &= kv_pos > q_pos - sliding_window
        s = jnp.where(mask, s, MASKED)
        m_prev = m_ref[...][:, :1]
        m_new = jnp.maximum(m_prev, s.max(axis=1, keepdims=True))
        p = jnp.exp(s - m_new) * mask.astype(jnp.float32)
        alpha = jnp.exp(m_prev - m_new)
        l_new = alpha * l_ref[...][:, :1] + p.sum(axis=1, keepdims=True)
        pv = jax.lax.dot_general(
            p.astype(v_vmem.dtype), v_vmem[...], (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32
        )
        acc_ref[...] = alpha * acc_ref[...] + pv
        m_ref[...] = jnp.broadcast_to(m_new, m_ref.shape)
        l_ref[...] = jnp.broadcast_to(l_new, l_ref.shape)

    @pl.when(kb == pl.num_programs(2) - 1)
    def _finish():
        total = l_ref[...][:, :1]
        o_ref[...] = (acc_ref[...] / jnp.where(total > 0, total, 1.0)).astype(o_ref.dtype)


@functools.partial(
    jax.jit,
    static_argnames=(
        "sm_scale",
        "sliding_window",
        "soft_cap",
        "block_sizes",
        "interpret",
        "fused_update",
        "cost_estimate",
    ),
)
def ragged_paged_attention_kernel(
    q,
    k_pages,
    v_pages,
    kv_lens,
    page_indices,
    cu_q_lens,
    num_seqs,
    k_new=None,
    v_new=None,
    slot_mapping=None,
    *,
    block_sizes: BlockSizes,
    sm_scale: float | None = None,
    sliding_window: int | None = None,
    soft_cap: float | None = None,
    interpret: bool = False,
    fused_update: bool = False,
    cost_estimate: pl.CostEstimate | None = None,
):
    """Attention output [num_tokens, num_q_heads, head_dim]; with fused_update also the updated caches:
    (out, k_pages, v_pages). k_new/v_new: [num_tokens, num_kv_heads, head_dim]; slot_mapping: i32[num_tokens]."""
    shape = check_shapes(q, k_pages, v_pages, kv_lens, page_indices, cu_q_lens, num_seqs)
    t, hq, d = q.shape
    hkv, g, page_size = shape.num_kv_heads, shape.group, shape.page_size
    bq, ppb = block_sizes.block_q, block_sizes.pages_per_block
    block_sizes.check(group=g, page_size=page_size, head_dim=d, dtype_bytes=q.dtype.itemsize)
    rows = bq * g
    max_work = -(-t // bq) + shape.max_num_seqs  # each sequence wastes at most one partial block
    num_kv_blocks = -(-shape.pages_per_seq // ppb)
    wseq, wblock, wvalid = work_list(cu_q_lens, num_seqs, bq, max_work)
    # Token of every (work item, row): [max_work, block_q], -1 where the row is past its sequence's end.
    token = cu_q_lens[wseq][:, None] + wblock[:, None] * bq + jnp.arange(bq)[None, :]
    in_block = (token < cu_q_lens[wseq + 1][:, None]) & (wvalid[:, None] == 1)
    token = jnp.where(in_block, token, -1)
    safe = jnp.clip(token, 0, t - 1)

    def by_work(x):  # [T, Hkv, n, D] -> [Hkv, max_work, block_q * n, D], zero rows where no token
        picked = jnp.where(in_block[:, :, None, None, None], x[safe], 0)  # [W, bq, Hkv, n, D]
        return picked.transpose(2, 0, 1, 3, 4).reshape(hkv, max_work, -1, d)

    q_work = by_work(q.reshape(t, hkv, g, d))
    pages = jnp.clip(page_indices, 0, shape.num_pages - 1).reshape(-1).astype(jnp.int32)
    new_spec = pl.BlockSpec((None, None, bq, d), lambda h, w, kb, *_: (h, w, 0, 0))
    if fused_update:
        if k_new is None or v_new is None or slot_mapping is None:
            raise ValueError("fused_update needs k_new, v_new and slot_mapping")
        kn = by_work(k_new[:, :, None, :].astype(k_pages.dtype))
        vn = by_work(v_new[:, :, None, :].astype(v_pages.dtype))
        slots = jnp.where(in_block, slot_mapping.astype(jnp.int32)[safe], -1).reshape(-1)
    else:
        kn = vn = jnp.zeros((1, 1, bq, d), k_pages.dtype)
        new_spec = pl.BlockSpec((None, None, bq, d), lambda h, w, kb, *_: (0, 0, 0, 0))
        slots = jnp.full((1,), -1, jnp.int32)
    kernel = functools.partial(
        _kernel,
        block_q=bq,
        group=g,
        page_size=page_size,
        pages_per_block=ppb,
        pages_per_seq=shape.pages_per_seq,
        sm_scale=d**-0.5 if sm_scale is None else sm_scale,
        sliding_window=sliding_window,
        soft_cap=soft_cap,
        fused_update=fused_update,
    )
    hbm = pl.BlockSpec(memory_space=pltpu.HBM)  # stays in HBM: copied by DMA at data-dependent offsets
    grid_spec = pltpu.PrefetchScalarGridSpec(
        num_scalar_prefetch=7,
        grid=(hkv, max_work, num_kv_blocks),
        in_specs=[
            pl.BlockSpec((None, None, rows, d), lambda h, w, kb, *_: (h, w, 0, 0)),
            hbm,
            hbm,
            new_spec,
            new_spec,
        ],
        out_specs=[pl.BlockSpec((None, None, rows, d), lambda h, w, kb, *_: (h, w, 0, 0))]
        + ([hbm, hbm] if fused_update else []),
        scratch_shapes=[
            pltpu.VMEM((ppb * page_size, d), k_pages.dtype),
            pltpu.VMEM((ppb * page_size, d), v_pages.dtype),
            pltpu.VMEM((page_size, d), k_pages.dtype),
            pltpu.VMEM((rows, 128), jnp.float32),
            pltpu.VMEM((rows, 128), jnp.float32),
            pltpu.VMEM((rows, d), jnp.float32),
            pltpu.SemaphoreType.DMA((5,)),
        ],
    )
    outputs = pl.pallas_call(
        kernel,
        grid_spec=grid_spec,
        out_shape=[jax.ShapeDtypeStruct((hkv, max_work, rows, d), q.dtype)]
        + (
            [
                jax.ShapeDtypeStruct(k_pages.shape, k_pages.dtype),
                jax.ShapeDtypeStruct(v_pages.shape, v_pages.dtype),
            ]
            if fused_update
            else []
        ),
        # Only the fused write updates the caches, in place: inputs are numbered after the 7 scalar-prefetch
        # operands (k_pages 8, v_pages 9). Donate them under jit, or XLA copies them to keep the inputs.
        input_output_aliases={8: 1, 9: 2} if fused_update else {},
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary", "arbitrary")),
        interpret=pltpu.InterpretParams() if interpret else False,
        name="servesim_ragged_paged_attention",
        cost_estimate=cost_estimate,
    )(
        kv_lens.astype(jnp.int32),
        pages,
        cu_q_lens.astype(jnp.int32),
        wseq,
        wblock,
        wvalid,
        slots,
        q_work,
        k_pages,
        v_pages,
        kn,
        vn,
    )
    out = outputs[0]
    # Gather each token's rows back from its work item.
    tokens = jnp.arange(t)
    seq = jnp.clip(
        jnp.searchsorted(cu_q_lens, tokens, side="right", method="compare_all") - 1, 0, shape.max_num_seqs - 1
    )
    q_lens = cu_q_lens[1:] - cu_q_lens[:-1]
    blocks = jnp.where(jnp.arange(shape.max_num_seqs) < num_seqs[0], (q_lens + bq - 1) // bq, 0)
    first_work = jnp.cumsum(blocks) - blocks
    within = tokens - cu_q_lens[seq]
    work = first_work[seq] + within // bq
    gathered = out[:, jnp.clip(work, 0, max_work - 1)]  # [Hkv, T, rows, D]
    row0 = (within % bq) * g
    picked = jax.vmap(
        lambda blocks_t, r: jax.lax.dynamic_slice_in_dim(blocks_t, r, g, axis=1), in_axes=(1, 0)
    )(gathered, row0)  # [T, Hkv, G, D]
    in_use = (tokens < cu_q_lens[num_seqs[0]])[:, None, None, None]
    result = jnp.where(in_use, picked, 0).reshape(t, hq, d).astype(q.dtype)
    if fused_update:
        return result, outputs[1], outputs[2]
    return result
