"""The paged KV cache as a pool of fixed-size blocks: the only owner of KV memory on a replica.

vLLM needs ceil(tokens / block_size) blocks for a request's computed tokens (17 tokens take 2 blocks of 16).
The scheduler asks the pool; when it says no, the scheduler decides whom to preempt.
"""

from __future__ import annotations


def blocks_for(num_tokens: int, block_size: int) -> int:
    return -(-num_tokens // block_size)


class KVBlockPool:
    __slots__ = ("num_blocks", "num_free_blocks")

    def __init__(self, num_blocks: int):
        self.num_blocks = num_blocks
        self.num_free_blocks = num_blocks

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - self.num_free_blocks

    @property
    def usage(self) -> float:
        return self.num_used_blocks / self.num_blocks if self.num_blocks else 0.0

    def can_allocate(self, num_blocks: int) -> bool:
        return num_blocks <= self.num_free_blocks

    def allocate(self, num_blocks: int) -> bool:
        """Take num_blocks if they are free; False (and nothing taken) otherwise."""
        if num_blocks > self.num_free_blocks:
            return False
        self.num_free_blocks -= num_blocks
        return True

    def free(self, num_blocks: int) -> None:
        self.num_free_blocks += num_blocks
        if self.num_free_blocks > self.num_blocks:
            raise AssertionError("KV blocks freed twice: more free blocks than the pool holds")
