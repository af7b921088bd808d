"""Tiling knobs of the ragged paged attention kernel, their defaults per TPU generation, and the rules a
combination must satisfy -- checked here so a bad choice is a ValueError naming both numbers, not a Mosaic
crash.

  block_q          query tokens of one sequence per grid step; block_q x (q heads per KV head) rows go
                   through the MXU together, so small values suit decodes, large ones prefills
  pages_per_block  KV pages copied into VMEM and attended per grid step (x page_size = KV tokens per step)

Defaults follow the *published* heuristics of tpu-inference's RPA v3
(docs/references.md#ragged-paged-attention): KV compute blocks of 512 tokens on v5e, 1024 on v6e/v5p, and
about 128 query rows per step. They are starting points, not tuned for this kernel: `calibrate kernels` on a TPU is how to tune.
"""

from __future__ import annotations

from dataclasses import dataclass

KV_TOKENS_PER_BLOCK = {"v5e": 512, "v6e": 1024, "v5p": 1024}
QUERY_ROWS_PER_BLOCK = 128
SCOPED_VMEM_BYTES = 16 * 2**20  # Mosaic's default scoped VMEM limit; the chips have more (v5e/v6e 128 MiB)


def sublane_tile(dtype_bytes: int) -> int:
    """Rows per (sublane x lane) tile on TPU: 8 for 32-bit, 16 for 16-bit, 32 for 8-bit values."""
    return 8 * (4 // dtype_bytes)


@dataclass(frozen=True)
class BlockSizes:
    block_q: int
    pages_per_block: int

    def __post_init__(self):
        if self.block_q < 1 or self.pages_per_block < 1:
            raise ValueError(
                f"block sizes must be >= 1, got block_q={self.block_q}, "
                f"pages_per_block={self.pages_per_block}"
            )

    @classmethod
    def default(cls, generation: str, *, group: int, page_size: int) -> BlockSizes:
        """generation: 'v5e', 'v6e' or 'v5p'; group: query heads per KV head."""
        if generation not in KV_TOKENS_PER_BLOCK:
            raise ValueError(
                f"no default block sizes for TPU generation {generation!r}; "
                f"known: {sorted(KV_TOKENS_PER_BLOCK)}"
            )
        block_q = max(1, QUERY_ROWS_PER_BLOCK // group)
        return cls(block_q, max(1, KV_TOKENS_PER_BLOCK[generation] // page_size))

    def check(self, *, group: int, page_size: int, head_dim: int, dtype_bytes: int) -> None:
        """TPU block-shape rules for this kernel's VMEM buffers; raises ValueError."""
        tile = sublane_tile(dtype_bytes)
        rows = self.block_q * group
        if rows % tile:
            raise ValueError(
                f"block_q x q-heads-per-kv-head = {self.block_q} x {group} = {rows} rows must be a multiple of "
                f"{tile} (the TPU sublane tile for {8 * dtype_bytes}-bit values)"
            )
        if page_size % tile:
            raise ValueError(
                f"page_size ({page_size}) must be a multiple of {tile} for {8 * dtype_bytes}-bit "
                "values: pages are copied into tile-aligned rows of a VMEM buffer"
            )
        kv = self.pages_per_block * page_size
        need = (
            rows * head_dim * dtype_bytes  # q
            + 2 * kv * head_dim * dtype_bytes  # k, v
            + rows * head_dim * 4  # accumulator
            + 2 * rows * 128 * 4  # running max and sum (lane-padded)
            + rows * kv * 4  # scores
        )
        if need > SCOPED_VMEM_BYTES:
            raise ValueError(
                f"block_q={self.block_q}, pages_per_block={self.pages_per_block} need {need / 2**20:.1f} MiB of "
                f"VMEM, over the {SCOPED_VMEM_BYTES / 2**20:.0f} MiB scoped limit; lower pages_per_block"
            )
