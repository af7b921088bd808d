"""Token identity of requests, reduced to what prefix caching needs: the chained hash of every full block.

vLLM identifies a full KV block by a hash of its tokens chained with the hash of the block before it, so two
requests share a cached block exactly when their token sequences agree up to that block's end. servesim
never materialises tokens as Python objects; a request's sequence (prompt, then output) is described as
*pieces* -- (source, offset, length): `length` tokens of a reusable token source starting at `offset`
(a tenant's system prompt, one turn of a conversation, a request's unique text) -- or, from traces, as
token ids or as block hash ids. The hashes are computed with numpy per request:

  token value   v = splitmix64(source << 32 | offset)          (a pseudo token id; equal pieces, equal v)
  block content c_i = sum over the block's tokens of v_j * W_j   (W: fixed random weights per position)
  chained hash  h_i = sum over k <= i of c_k * P_k               (P: fixed random weights per block index)

all in wrapping 64-bit arithmetic. h_i depends on exactly the tokens of blocks 0..i, so equal prefixes give
equal hashes and (up to 64-bit collisions) different ones differ. Only full blocks are hashed, as in vLLM.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_MAX_BLOCK_TOKENS = 1024
_MAX_BLOCKS = 1 << 16
PIECE_CACHE = 50_000  # pieces whose token values are kept for reuse (a conversation's history)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A 64-bit mixing function, vectorised (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


_POSITION = splitmix64(np.arange(_MAX_BLOCK_TOKENS, dtype=np.uint64) + np.uint64(1 << 40))
_BLOCK = splitmix64(np.arange(_MAX_BLOCKS, dtype=np.uint64) + np.uint64(1 << 41))


def token_values(pieces: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """The pseudo token ids of a sequence given as (source, offset, length) pieces."""
    parts = [
        splitmix64((np.uint64(source) << np.uint64(32)) + np.arange(offset, offset + length, dtype=np.uint64))
        for source, offset, length in pieces
        if length > 0
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.uint64)


def block_hashes_of_tokens(tokens: np.ndarray, block_size: int) -> list[int]:
    """Chained hashes of the full blocks of a token-id (or token-value) array."""
    full = len(tokens) // block_size
    if full == 0:
        return []
    if block_size > _MAX_BLOCK_TOKENS or full > _MAX_BLOCKS:
        raise ValueError(f"a sequence of {full} blocks of {block_size} tokens is beyond the hash tables")
    blocks = tokens[: full * block_size].astype(np.uint64).reshape(full, block_size)
    with np.errstate(over="ignore"):
        contents = (blocks * _POSITION[:block_size]).sum(axis=1, dtype=np.uint64)
        chained = np.cumsum(contents * _BLOCK[:full], dtype=np.uint64)
    return chained.tolist()


def block_hashes(pieces: Sequence[tuple[int, int, int]], block_size: int) -> list[int]:
    return block_hashes_of_tokens(token_values(pieces), block_size)


def block_hashes_of_ids(hash_ids: Sequence[int], ids_block_tokens: int, block_size: int) -> list[int]:
    """Hashes of our blocks from a trace's block hash ids (Mooncake: one id per 512 tokens, chained by the
    trace): each of our blocks is identified by its trace block's id and its position inside it. Blocks that
    straddle two trace blocks take both ids."""
    ids = np.asarray(hash_ids, dtype=np.uint64)
    tokens = np.repeat(ids, ids_block_tokens) * np.uint64(ids_block_tokens) + np.tile(
        np.arange(ids_block_tokens, dtype=np.uint64), len(ids)
    )
    return block_hashes_of_tokens(splitmix64(tokens), block_size)


class TokenIdentity(ABC):
    """What a workload knows of each request's tokens (prompt, then output), as block hashes on demand.

    The block size is the replica's (it differs between runtimes), so hashes are computed when a request is
    sent, once, and only when prefix caching is on."""

    @abstractmethod
    def block_hashes(self, index: int, block_size: int) -> list[int]: ...


class PieceIdentity(TokenIdentity):
    """Requests described by (source, offset, length) pieces: shared system prompts, conversations. A
    piece's token values are computed once and reused by every request that contains it (a conversation
    resends its history on every turn)."""

    def __init__(self, pieces: list[list[tuple[int, int, int]]]):
        self.pieces = pieces
        self._values: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()

    def _piece(self, piece: tuple[int, int, int]) -> np.ndarray:
        values = self._values.get(piece)
        if values is None:
            values = self._values[piece] = token_values([piece])
            if len(self._values) > PIECE_CACHE:
                self._values.popitem(last=False)
        return values

    def block_hashes(self, index: int, block_size: int) -> list[int]:
        parts = [self._piece(p) for p in self.pieces[index] if p[2] > 0]
        tokens = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
        return block_hashes_of_tokens(tokens, block_size)


class TokenIdIdentity(TokenIdentity):
    """Requests with their real prompt token ids (a vLLM benchmark JSONL); outputs are unique."""

    def __init__(self, prompt_ids: list[np.ndarray], output_tokens: np.ndarray):
        self.prompt_ids = prompt_ids
        self.output_tokens = output_tokens

    def block_hashes(self, index: int, block_size: int) -> list[int]:
        prompt = self.prompt_ids[index].astype(np.uint64)
        output = token_values([(OUTPUT_SOURCE + index, 0, int(self.output_tokens[index]))])
        return block_hashes_of_tokens(np.concatenate([prompt, output]), block_size)


class HashIdIdentity(TokenIdentity):
    """Requests given by a trace's block hash ids (Mooncake: one per `ids_block_tokens` prompt tokens)."""

    def __init__(self, hash_ids: list[list[int]], ids_block_tokens: int):
        self.hash_ids = hash_ids
        self.ids_block_tokens = ids_block_tokens

    def block_hashes(self, index: int, block_size: int) -> list[int]:
        return block_hashes_of_ids(self.hash_ids[index], self.ids_block_tokens, block_size)


class SubsetIdentity(TokenIdentity):
    """The identity of some of a workload's requests: request i here is request index[i] there."""

    def __init__(self, inner: TokenIdentity, index: np.ndarray):
        self.inner, self.index = inner, index

    def block_hashes(self, index: int, block_size: int) -> list[int]:
        return self.inner.block_hashes(int(self.index[index]), block_size)


OUTPUT_SOURCE = 1 << 30  # token sources above this are requests' own outputs (source = OUTPUT_SOURCE + index)
