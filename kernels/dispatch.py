"""Choose the Pallas kernel or the jnp reference, with a feature flag and a logged fallback.

  implementation = argument, else SERVESIM_KERNELS (pallas | reference), else "pallas"

"pallas" runs the kernel where it applies: on a TPU backend, or anywhere with interpret=True (Pallas TPU
interpret mode, for tests on CPU). Where it does not apply -- no TPU and no interpret mode, block sizes that
break the TPU tiling rules, an unknown TPU generation -- the reference runs instead and the reason is logged
once per reason at WARNING on the "servesim.kernels" logger. Results never depend on the choice beyond
floating-point tolerance (tests/test_kernels.py).
"""

from __future__ import annotations

import logging
import os

import jax

from kernels.block_sizes import BlockSizes
from kernels.kv_cache_update.kernel import kv_cache_update_kernel
from kernels.kv_cache_update.reference import kv_cache_update_reference
from kernels.ragged_paged_attention.kernel import ragged_paged_attention_kernel
from kernels.ragged_paged_attention.reference import ragged_paged_attention_reference

log = logging.getLogger("servesim.kernels")
ENV = "SERVESIM_KERNELS"
CHOICES = ("pallas", "reference")
_logged: set[str] = set()


def chosen(implementation: str | None) -> str:
    value = implementation or os.environ.get(ENV, "pallas")
    if value not in CHOICES:
        raise ValueError(f"{ENV} / implementation must be one of {CHOICES}, got {value!r}")
    return value


def tpu_generation() -> str | None:
    """'v5e', 'v6e', 'v5p' for a TPU backend, None otherwise."""
    device = jax.devices()[0]
    if device.platform != "tpu":
        return None
    kind = device.device_kind.lower()
    for key, gen in (("v5 lite", "v5e"), ("v5e", "v5e"), ("v6", "v6e"), ("v5p", "v5p"), ("v5", "v5p")):
        if key in kind:
            return gen
    return kind


def _fallback(reason: str) -> None:
    if reason not in _logged:
        _logged.add(reason)
        log.warning("ragged paged attention: using the jnp reference: %s", reason)


def _kernel_blocks(q, k_pages, block_sizes: BlockSizes | None, interpret: bool) -> BlockSizes | str:
    """Block sizes the kernel would run with, or why it cannot run here."""
    gen = tpu_generation()
    if gen is None and not interpret:
        return f"no TPU backend ({jax.devices()[0].platform}) and interpret mode not requested"
    group = q.shape[1] // k_pages.shape[0]
    page_size = k_pages.shape[2]
    if block_sizes is None:
        try:
            block_sizes = BlockSizes.default(gen or "v6e", group=group, page_size=page_size)
        except ValueError as err:
            return str(err)
    try:
        block_sizes.check(group=group, page_size=page_size, head_dim=q.shape[2], dtype_bytes=q.dtype.itemsize)
    except ValueError as err:
        return str(err)
    return block_sizes


def ragged_paged_attention(
    q,
    k_pages,
    v_pages,
    kv_lens,
    page_indices,
    cu_q_lens,
    num_seqs,
    *,
    implementation: str | None = None,
    block_sizes: BlockSizes | None = None,
    interpret: bool = False,
    sm_scale: float | None = None,
    sliding_window: int | None = None,
    soft_cap: float | None = None,
):
    args = (q, k_pages, v_pages, kv_lens, page_indices, cu_q_lens, num_seqs)
    if chosen(implementation) == "pallas":
        blocks = _kernel_blocks(q, k_pages, block_sizes, interpret)
        if isinstance(blocks, BlockSizes):
            return ragged_paged_attention_kernel(
                *args,
                block_sizes=blocks,
                interpret=interpret,
                sm_scale=sm_scale,
                sliding_window=sliding_window,
                soft_cap=soft_cap,
            )
        _fallback(blocks)
    return ragged_paged_attention_reference(
        *args, sm_scale=sm_scale, sliding_window=sliding_window, soft_cap=soft_cap
    )


def kv_cache_update(
    k_new,
    v_new,
    k_pages,
    v_pages,
    slot_mapping,
    *,
    implementation: str | None = None,
    interpret: bool = False,
):
    if chosen(implementation) == "pallas":
        if tpu_generation() is not None or interpret:
            return kv_cache_update_kernel(k_new, v_new, k_pages, v_pages, slot_mapping, interpret=interpret)
        _fallback(f"no TPU backend ({jax.devices()[0].platform}) and interpret mode not requested")
    return kv_cache_update_reference(k_new, v_new, k_pages, v_pages, slot_mapping)
