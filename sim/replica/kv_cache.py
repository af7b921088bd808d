"""The paged KV cache as a pool of fixed-size blocks: the only owner of KV memory on a replica.

vLLM needs ceil(tokens / block_size) blocks for a request's computed tokens (17 tokens take 2 blocks of 16).
The scheduler asks the pool; when it says no, the scheduler decides whom to preempt.

Automatic prefix caching (vLLM V1's KVCacheManager, docs/references.md#prefix-caching), when enabled:
a full block is identified by the hash of its tokens chained with the hash of the block before it, so
equal hashes mean equal prefixes. A full block whose hash is known is *cached*: other requests whose
prompts start with the same blocks take it instead of computing it (its reference count goes up). When no
request holds a cached block any more it is not freed but kept *evictable*, in least-recently-freed order,
and still hit; allocation takes never-cached free blocks first and then evicts the least recently freed
cached block, dropping its hash. Blocks are counted, not materialised: the pool keeps the free count, the
reference count of every cached hash and the evictable ones in LRU order.

A CPU offload tier (vLLM's KV offloading connector), when it has capacity: a cached block evicted from the
device is kept in host memory (least recently evicted dropped first), and a request whose prefix continues
there after its device hits loads those blocks back over the host link instead of recomputing them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


def blocks_for(num_tokens: int, block_size: int) -> int:
    return -(-num_tokens // block_size)


class KVBlockPool:
    __slots__ = (
        "num_blocks",
        "num_free_blocks",
        "_plain_free",
        "refs",
        "evictable",
        "hit_blocks",
        "evictions",
        "cpu_capacity",
        "cpu",
        "cpu_hit_blocks",
    )

    def __init__(self, num_blocks: int, cpu_capacity: int = 0):
        self.num_blocks = num_blocks
        self.num_free_blocks = num_blocks  # free for allocation: never-cached ones plus evictable cached ones
        self._plain_free = num_blocks  # free blocks holding no cached hash
        self.refs: dict[int, int] = {}  # hash of a cached block -> requests holding it (0: evictable)
        self.evictable: OrderedDict[int, None] = OrderedDict()  # cached, unreferenced, least recent first
        self.hit_blocks = 0  # blocks taken from the cache instead of computed (for the hit rate)
        self.evictions = 0
        self.cpu_capacity = cpu_capacity  # blocks the host-memory tier holds (0: no offload)
        self.cpu: OrderedDict[int, None] = OrderedDict()  # offloaded hashes, least recently evicted first
        self.cpu_hit_blocks = 0

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - self.num_free_blocks

    @property
    def usage(self) -> float:
        return self.num_used_blocks / self.num_blocks if self.num_blocks else 0.0

    def can_allocate(self, num_blocks: int) -> bool:
        return num_blocks <= self.num_free_blocks

    def allocate(self, num_blocks: int) -> bool:
        """Take num_blocks if they are free -- never-cached blocks first, then the least recently freed
        cached ones (their hashes are dropped); False (and nothing taken) otherwise."""
        if num_blocks > self.num_free_blocks:
            return False
        self.num_free_blocks -= num_blocks
        plain = min(num_blocks, self._plain_free)
        self._plain_free -= plain
        for _ in range(num_blocks - plain):
            victim, _ = self.evictable.popitem(last=False)
            del self.refs[victim]
            self.evictions += 1
            if self.cpu_capacity:
                self.cpu[victim] = None
                self.cpu.move_to_end(victim)
                if len(self.cpu) > self.cpu_capacity:
                    self.cpu.popitem(last=False)
        return True

    def free(self, num_blocks: int) -> None:
        """Give back blocks that hold no cached hash."""
        self.num_free_blocks += num_blocks
        self._plain_free += num_blocks
        if self.num_free_blocks > self.num_blocks:
            raise AssertionError("KV blocks freed twice: more free blocks than the pool holds")

    # ---- prefix caching ----------------------------------------------------------------------------------
    def longest_hit(self, hashes: Sequence[int], max_blocks: int) -> int:
        """How many leading blocks of `hashes` (at most max_blocks) are cached."""
        refs = self.refs
        k = 0
        for h in hashes:
            if k >= max_blocks or h not in refs:
                break
            k += 1
        return k

    def hit_and_evictable(self, hashes: Sequence[int], max_blocks: int) -> tuple[int, int]:
        """(longest_hit, how many of those blocks nobody holds), in one pass (admission needs both)."""
        refs = self.refs
        k = idle = 0
        for h in hashes:
            if k >= max_blocks:
                break
            r = refs.get(h)
            if r is None:
                break
            k += 1
            idle += r == 0
        return k, idle

    def offloaded_hit(self, hashes: Sequence[int], start: int, max_blocks: int) -> int:
        """How many blocks of `hashes` from index `start` on (up to max_blocks in all) the host tier holds."""
        cpu = self.cpu
        k = start
        while k < max_blocks and k < len(hashes) and hashes[k] in cpu:
            k += 1
        return k - start

    def take_cached(self, hashes: Sequence[int]) -> None:
        """A request takes these cached blocks (found by longest_hit): unreferenced ones stop being
        evictable and leave the free count."""
        refs, evictable = self.refs, self.evictable
        taken = 0
        for h in hashes:
            r = refs[h]
            if r == 0:
                del evictable[h]
                taken += 1
            refs[h] = r + 1
        self.num_free_blocks -= taken
        self.hit_blocks += len(hashes)

    def cache(self, block_hash: int) -> bool:
        """A request's own full block with this hash becomes cached (held by it). False when the hash is
        already cached: the block stays the request's own, uncached (vLLM keeps the first copy)."""
        if block_hash in self.refs:
            return False
        self.refs[block_hash] = 1
        return True

    def release_cached(self, hashes: Sequence[int]) -> None:
        """A request lets go of cached blocks, last block first (so a request's tail is evicted before its
        head, as vLLM frees in reverse order)."""
        refs, evictable = self.refs, self.evictable
        freed = 0
        for h in reversed(hashes):
            r = refs[h] - 1
            refs[h] = r
            if r == 0:
                evictable[h] = None
                freed += 1
        self.num_free_blocks += freed
        if self.num_free_blocks > self.num_blocks:
            raise AssertionError("KV blocks freed twice: more free blocks than the pool holds")

    def check(self) -> None:
        """Invariants (tests): counts agree, no negative reference, no block both free and referenced."""
        assert all(r >= 0 for r in self.refs.values())
        assert all(self.refs[h] == 0 for h in self.evictable)
        assert sum(1 for r in self.refs.values() if r == 0) == len(self.evictable)
        assert self.num_free_blocks == self._plain_free + len(self.evictable)
        assert 0 <= self.num_free_blocks <= self.num_blocks
