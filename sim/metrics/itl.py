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

from sim.replica.request import RequestState


def pooled_itl(
    requests: Iterable[RequestState], step_end_s: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(values_s, counts): the pooled ITL distribution over the given (successful) requests."""
    diff = [np.zeros(len(ends) + 1, dtype=np.int64) for ends in step_end_s]
    extra: list[float] = []
    for req in requests:
        ends = step_end_s[req.replica_id]
        d = diff[req.replica_id]
        prev_last = -1
        for first, last in req.segments:
            if last > first:
                d[first + 1] += 1
                d[last + 1] -= 1
            if prev_last >= 0:
                extra.append(ends[first] - ends[prev_last])
            prev_last = last
    values, counts = [], []
    for ends, d in zip(step_end_s, diff, strict=True):
        if len(ends) < 2:
            continue
        values.append(np.diff(ends))
        counts.append(np.cumsum(d)[1 : len(ends)])
    if extra:
        values.append(np.asarray(extra))
        counts.append(np.ones(len(extra), dtype=np.int64))
    if not values:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(values), np.concatenate(counts)


def request_itl(req: RequestState, step_end_s: Sequence[np.ndarray]) -> list[float]:
    """One request's ITL list (only for the optional per-request dump)."""
    ends = step_end_s[req.replica_id]
    times = np.concatenate([ends[first : last + 1] for first, last in req.segments]) if req.segments else []
    return np.diff(times).tolist() if len(times) > 1 else []
