"""Where many independent runs execute: local worker processes (the default) or a Ray cluster.

Every multi-run command -- sweeps, variants, Monte Carlo studies, `plan` -- hands its runs to an executor as
(function, items) and gets the results back in item order. Each item carries its own seed, so a result never
depends on where, when or next to what it ran: local and Ray execution give identical answers (tested).

- LocalExecutor: `spawn`ed processes (not forked: the parent may hold threads, e.g. the progress bar, whose
  locks a forked child would copy), or the calling process itself for one job.
- RayExecutor: Ray tasks (`ray.remote`), on a local Ray instance it starts (num_cpus = jobs) or on the
  cluster at `address` (e.g. "auto" or "ray://head:10001"). The function must be importable by module
  path on the workers, i.e. servesim installed there.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from sim.errors import InputError

Progress = Callable[[int, int, str], None]  # (done, total, label of the item just done)
EXECUTORS = ("local", "ray")


def _gather(
    total: int,
    finished: Iterator[tuple[int, Any]],
    labels: Sequence[str] | None,
    progress: Progress | None,
) -> list:
    """Results in item order from (item index, result) pairs in the order the items finished, reporting
    progress as they come: what every executor does once it knows how to run items."""
    results: list = [None] * total
    if progress:
        progress(0, total, "")
    for done, (k, result) in enumerate(finished, 1):
        results[k] = result
        if progress:
            progress(done, total, labels[k] if labels else "")
    return results


class LocalExecutor:
    name = "local"

    def __init__(self, jobs: int | None = None):
        self.jobs = jobs

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        *,
        labels: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> list:
        workers = min(self.jobs or os.cpu_count() or 1, len(items))
        if workers <= 1:
            return _gather(len(items), ((k, fn(item)) for k, item in enumerate(items)), labels, progress)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(fn, item): k for k, item in enumerate(items)}
            finished = ((futures[f], f.result()) for f in as_completed(futures))
            return _gather(len(items), finished, labels, progress)

    def close(self) -> None:
        pass


class RayExecutor:
    name = "ray"

    def __init__(self, jobs: int | None = None, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise InputError(
                "the Ray executor needs ray: pip install 'servesim[ray]'", "--executor"
            ) from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                options["address"] = address
            else:
                options["num_cpus"] = jobs or os.cpu_count() or 1
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise InputError(
                    f"cannot start or reach Ray ({address or 'local'}): {err}", "--address"
                ) from None
            self._started = True

    def map(
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        *,
        labels: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> list:
        return _gather(len(items), self._finished(fn, items), labels, progress)

    def _finished(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """(index, result) of each Ray task as it finishes."""
        ray = self._ray
        remote = ray.remote(fn)
        refs = [remote.remote(item) for item in items]
        index = {ref: k for k, ref in enumerate(refs)}
        pending = refs
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                yield index[ref], ray.get(ref)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_executor(kind: str = "local", *, jobs: int | None = None, address: str | None = None):
    """An executor by name; `address` is for Ray only."""
    if kind == "local":
        if address:
            raise InputError("only the Ray executor takes an address", "--address")
        return LocalExecutor(jobs)
    if kind == "ray":
        return RayExecutor(jobs, address)
    raise InputError(f"unknown executor {kind!r}; one of {', '.join(EXECUTORS)}", "--executor")
