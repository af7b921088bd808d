"""Tail latency of tensor-parallel collectives.

Every all-reduce waits for its slowest rank. Each rank's share is slowed by an independent log-normal
factor (median 1, log-space sigma per link type), so a step's communication time is multiplied by the
maximum of t such factors: a dedicated link (NVLink, ICI; small sigma) stays close to its alpha-beta time
whatever t, while a shared, contended one (PCIe through switches and the host; large sigma) grows a tail
that lengthens with the number of ranks. One factor per step: contention within a step is correlated.
"""

from __future__ import annotations

from collections import deque

import numpy as np

_BLOCK = 4096  # factors drawn at once, to keep per-step cost O(1)


class StragglerJitter:
    def __init__(self, sigma: float, ranks: int, rng: np.random.Generator):
        self.sigma, self.ranks, self.rng = sigma, ranks, rng
        self._factors: list[float] = []
        self._recent: deque[float] = deque(maxlen=2 * _BLOCK)  # drawn factors, newest last (for give_back)

    @property
    def active(self) -> bool:
        """Whether factors are drawn at all (some noise on more than one rank)."""
        return self.sigma != 0 and self.ranks > 1

    def factor(self) -> float:
        if self.sigma == 0 or self.ranks <= 1:
            return 1.0
        if not self._factors:
            draws = self.rng.lognormal(0.0, self.sigma, size=(_BLOCK, self.ranks)).max(axis=1)
            self._factors = draws.tolist()[::-1]
        value = self._factors.pop()
        self._recent.append(value)
        return value

    def give_back(self, n: int = 1) -> None:
        """Undo the n most recent factor() calls not given back yet (steps priced but not taken): the next
        factor() calls return them again, in order, so the stream is as if they were never drawn."""
        if self.sigma != 0 and self.ranks > 1:
            for _ in range(n):
                self._factors.append(self._recent.pop())

    def factors(self, k: int) -> list[float]:
        """k successive factor() values (a run of steps priced together)."""
        return [self.factor() for _ in range(k)]
