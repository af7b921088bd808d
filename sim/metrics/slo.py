"""The service-level objective a request is judged against (DistServe's goodput; docs/metrics.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SLO:
    name: str  # the SLO class, "<class> (overridden)" or "custom"
    ttft_ms: float
    tpot_ms: float
    e2e_ms: float | None
