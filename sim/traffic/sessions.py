"""Token identity that production traffic has and random lengths do not: shared system prompts and
multi-turn conversations that resend their history.

Both are described as (source, offset, length) pieces per request (sim/traffic/identity.py): a source is
one reusable run of tokens -- tenant t's system prompt, message m of a conversation, the answer to request
i -- so prefixes shared between requests are shared pieces, and prefix caching hits them exactly where
vLLM would. Everything here is numpy arrays plus one short list of pieces per request; no per-token
objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.traffic.identity import OUTPUT_SOURCE, PieceIdentity
from sim.traffic.lengths import sample_lengths
from sim.traffic.spec import SharedPrefix, WorkloadSpec

PREFIX_SOURCE = 1 << 29  # sources of tenants' system prompts: PREFIX_SOURCE + tenant
Piece = tuple[int, int, int]


def _stream(seed: int, key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(key + 1)[key])


_STREAM_TENANTS, _STREAM_TURNS, _STREAM_THINK = 3, 4, 5


def prefix_pieces(prefix: SharedPrefix | None, tenant: int) -> list[Piece]:
    return [] if prefix is None else [(PREFIX_SOURCE + tenant, 0, prefix.tokens)]


def shared_prefix_identity(
    prompt: np.ndarray, output: np.ndarray, prefix: SharedPrefix, seed: int
) -> tuple[np.ndarray, PieceIdentity]:
    """(prompts lengthened by their system prompt, identity): each request gets a tenant's system prompt
    in front of its own text (source = its index) and its answer after."""
    tenants = _stream(seed, _STREAM_TENANTS).integers(0, prefix.tenants, size=len(prompt))
    pieces = [
        [*prefix_pieces(prefix, int(t)), (i, 0, int(p)), (OUTPUT_SOURCE + i, 0, int(o))]
        for i, (t, p, o) in enumerate(zip(tenants, prompt, output, strict=True))
    ]
    return prompt + prefix.tokens, PieceIdentity(pieces)


@dataclass(frozen=True)
class ConversationRequests:
    """Every turn of every conversation, conversation by conversation, turns in order."""

    arrival_s: np.ndarray  # a turn's conversation start (later turns are sent when the previous one ends)
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    session_id: np.ndarray  # the conversation
    follows: np.ndarray  # index of the previous turn, -1 for a first turn
    think_s: np.ndarray  # think time before this turn (0 for first turns)
    identity: PieceIdentity
    note: str


def conversations(
    starts: np.ndarray, spec: WorkloadSpec, num_requests: int | None, seed: int
) -> ConversationRequests:
    """Conversations starting at `starts`, with turns until num_requests turns in all (or every start)."""
    conv = spec.conversations
    assert conv is not None
    rng_turns = _stream(seed, _STREAM_TURNS)
    if conv.turns_distribution == "fixed":
        turns = np.full(len(starts), max(1, round(conv.turns)), dtype=np.int64)
    else:  # geometric on 1, 2, ... with mean `turns`
        turns = rng_turns.geometric(1.0 / conv.turns, size=len(starts)).astype(np.int64)
    if num_requests is not None:
        ends = np.cumsum(turns)
        keep = int(np.searchsorted(ends, num_requests)) + 1
        turns = turns[:keep].copy()
        if len(turns):
            turns[-1] -= max(0, int(turns.sum()) - num_requests)
        starts = starts[:keep]
    total = int(turns.sum())
    length_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    message, answer, note = sample_lengths(spec.lengths, total, length_rng, seed)
    tenants = _stream(seed, _STREAM_TENANTS).integers(
        0, spec.prefix.tenants if spec.prefix else 1, len(turns)
    )
    think_draws = (
        _stream(seed, _STREAM_THINK).exponential(conv.think_time_s, size=total)
        if conv.think_time_s
        else np.zeros(total)
    )
    prompt = np.empty(total, np.int64)
    follows = np.full(total, -1, np.int64)
    think = np.zeros(total)
    session = np.repeat(np.arange(len(turns), dtype=np.int64), turns)
    arrival = np.repeat(starts, turns)
    pieces: list[list[Piece]] = []
    i = 0
    for c, n in enumerate(turns.tolist()):
        history = prefix_pieces(spec.prefix, int(tenants[c]))
        length = sum(p[2] for p in history)
        for k in range(n):
            history = [*history, (i, 0, int(message[i]))]  # this turn's new message (source = its index)
            length += int(message[i])
            prompt[i] = length
            pieces.append([*history, (OUTPUT_SOURCE + i, 0, int(answer[i]))])
            if k:
                follows[i] = i - 1
                think[i] = think_draws[i]
            history = [*history, (OUTPUT_SOURCE + i, 0, int(answer[i]))]  # the answer joins the history
            length += int(answer[i])
            i += 1
    note = f"{len(turns)} conversations of {conv.turns:g} turns ({conv.turns_distribution}); messages: {note}"
    return ConversationRequests(arrival, prompt, answer, session, follows, think, PieceIdentity(pieces), note)
