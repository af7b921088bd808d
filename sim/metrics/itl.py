"""Inter-token latencies from step end times and each request's token segments.

A request that runs continuously from step s to step e streams one token at the end of every step, so its
ITLs are end[j] - end[j-1] for j in s+1..e. Pooled over requests, step j's gap therefore counts once per
request whose segment covers (j-1, j): a difference array over segments gives those counts in
O(segments + steps). A preemption splits a request into segments; the pause between two segments is one
more (long) ITL, added on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

Segments = Sequence[tuple[int, int]]  # (first step, last step) of each run of tokens of one request


def pooled_itl(
    requests: Iterable[tuple[int, Segments]], step_end_s: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(values_s, counts): the pooled ITL distribution over the given (successful) requests, each given
    as (replica id, token segments)."""
    # Step j of replica r is slot offsets[r] + j of one difference array over all replicas.
    offsets = np.concatenate(([0], np.cumsum([len(ends) + 1 for ends in step_end_s])))
    starts: list[int] = []  # slot of each segment's first gap (+1) and of the step after its last (-1)
    stops: list[int] = []
    extra: list[float] = []
    for replica_id, segments in requests:
        base = int(offsets[replica_id])
        prev_last = -1
        for first, last in segments:
            if last > first:
                starts.append(base + first + 1)
                stops.append(base + last + 1)
            if prev_last >= 0:
                ends = step_end_s[replica_id]
                extra.append(float(ends[first] - ends[prev_last]))
            prev_last = last
    size = int(offsets[-1])
    diff = np.bincount(np.asarray(starts, dtype=np.int64), minlength=size) - np.bincount(
        np.asarray(stops, dtype=np.int64), minlength=size
    )
    values, counts = [], []
    for r, ends in enumerate(step_end_s):
        if len(ends) < 2:
            continue
        values.append(np.diff(ends))
        counts.append(np.cumsum(diff[offsets[r] : offsets[r + 1]])[1 : len(ends)])
    if extra:
        values.append(np.asarray(extra))
        counts.append(np.ones(len(extra), dtype=np.int64))
    if not values:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(values), np.concatenate(counts)


def request_itl(segments: Segments, step_end_s: np.ndarray) -> list[float]:
    """One request's ITL list from its segments and its replica's step end times (for the optional
    per-request dump)."""
    if not segments:
        return []
    times = np.concatenate([step_end_s[first : last + 1] for first, last in segments])
    return np.diff(times).tolist() if len(times) > 1 else []
