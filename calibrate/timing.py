"""Timing helpers: median of repeats after warm-up, and a per-point time limit."""

from __future__ import annotations

import contextlib
import signal
import statistics
import time
from collections.abc import Callable


class PointTimeout(Exception):
    """A grid point took longer than --point-timeout."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise PointTimeout in the main thread after `seconds` (Unix alarm); no limit when None."""
    if not seconds:
        yield
        return

    def _raise(signum, frame):
        raise PointTimeout(f"exceeded {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def median_time(
    fn: Callable[[], None],
    *,
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
    before: Callable[[], None] | None = None,
) -> float:
    """Median wall time of fn() over `repeats` runs after `warmup` runs. `before` resets state outside the
    timed region (e.g. trims a KV cache); `sync` waits for an accelerator."""
    for _ in range(warmup):
        if before:
            before()
        fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        if before:
            before()
        if sync:
            sync()
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cuda_median_time(
    torch, fn: Callable[[], None], *, repeats: int, warmup: int = 1, before: Callable[[], None] | None = None
) -> float:
    """Median GPU time of fn() measured with CUDA events (device time, not host launch time)."""
    for _ in range(warmup):
        if before:
            before()
        fn()
    times = []
    for _ in range(repeats):
        if before:
            before()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)  # elapsed_time is in milliseconds
    return statistics.median(times)
