"""Scenario sections for studies -- runs of many simulations: a sweep (series x grid), variants compared
side by side, Monte Carlo runs with a failover-risk objective, and what `plan` searches. They describe how
to run the scenario, not what it simulates; the runners (sim/sweep.py, sim/risk/, sim/plan/) read them."""

from __future__ import annotations

import itertools
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sim.strict import StrictModel

# ---- sweep --------------------------------------------------------------------------------------------


class SweepSpec(StrictModel):
    """Run many points: each series (a named set of overrides, e.g. one per hardware) over the grid (the
    Cartesian product of the listed values). Keys are dotted scenario paths."""

    series: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="name -> {dotted.key: value}."
    )
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted.key -> values to try.")

    @model_validator(mode="after")
    def _not_empty(self) -> SweepSpec:
        if not self.series and not self.grid:
            raise ValueError("a sweep needs series, grid, or both")
        if any(len(v) == 0 for v in self.grid.values()):
            raise ValueError("every grid key needs at least one value")
        check_variants(self.series, "series")
        return self

    @property
    def num_points(self) -> int:
        points = max(1, len(self.series))
        for values in self.grid.values():
            points *= len(values)
        return points


# ---- variants and Monte Carlo risk --------------------------------------------------------------------


class ObjectiveSpec(StrictModel):
    """What a run must achieve; a run that misses it is a breach. Windowed attainment = good / arrived for
    the requests that arrived in each window (failures count as not good)."""

    window_s: float = Field(10.0, gt=0, description="Window of the attainment series.")
    min_attainment: float = Field(0.9, gt=0, le=1, description="Target windowed SLO attainment.")
    max_breach_s: float = Field(
        30.0, ge=0, description="Breach when attainment stays below target longer than this (consecutive)."
    )
    max_failed_requests: int | None = Field(
        0, ge=0, description="Breach when more requests than this fail; none = failures alone never breach."
    )


class MonteCarloSpec(StrictModel):
    """N independent runs (seeds drawn from the scenario seed) in parallel processes; distributions with
    confidence intervals, and failover risk = P(a run breaches the objective)."""

    runs: int = Field(1, ge=1, description="Independent runs; 1 = a single ordinary run.")
    jobs: int | None = Field(None, ge=1, description="Parallel processes; default = CPU count.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Confidence level of the reported intervals.")
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec, description="What counts as a breach.")


Variants = dict[str, dict[str, Any]]


SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")


def check_variants(variants: Variants, kind: str = "variant") -> Variants:
    """Names become folder names under --out: letters, digits, '_', '-' and '.', not starting with '.' (so
    never '.' or '..', which would write into --out itself or its parent), at most 100 characters."""
    for name in variants:
        if not SAFE_NAME.match(name):
            raise ValueError(
                f"{kind} name {name!r} must be letters, digits, '_', '-' or '.', not start with '.', and be at "
                "most 100 characters (it names a results folder)"
            )
    return variants


# Scenario keys a pool may not override: what the whole fleet shares (traffic, SLO, routing and the
# front end, the run's bounds and studies) and the model every pool serves.
FLEET_WIDE_KEYS = (
    "name", "description", "seed", "model", "workload", "slo", "duration_s", "num_requests", "metrics",
    "sweep", "monte_carlo", "plan", "variants", "pools", "disaggregation", "fleet.router", "fleet.admission",
    "fleet.retry",
)  # fmt: skip


def check_pools(pools: Variants) -> Variants:
    check_variants(pools, "pool")
    for name, changes in pools.items():
        for key in changes:
            shared = [k for k in FLEET_WIDE_KEYS if key == k or key.startswith(k + ".")]
            if shared:
                raise ValueError(f"pool {name!r} sets {key}, which the whole fleet shares")
    return pools


# ---- plan ---------------------------------------------------------------------------------------------


Option = dict[str, Any]  # dotted scenario key -> value


class PlanSpec(StrictModel):
    """Each dimension of `space` is either a list of values for the dotted key that names it
    (`engine.max_num_seqs: [128, 256]`) or named options, each a set of overrides
    (`hardware: {h100: {hardware: h100}, v6e: {hardware: tpu-v6e, profile: ...}}`). Candidates are the
    Cartesian product of the dimensions; replicas are not a dimension: plan sizes every candidate."""

    space: dict[str, list[Any] | dict[str, Option]] = Field(
        default_factory=dict, description="Dimensions to search (see above); empty = the scenario as is."
    )
    max_replicas: int = Field(64, ge=1, description="Largest fleet considered per candidate.")
    probe_requests: int = Field(
        2000, ge=50, description="Requests per capacity probe (one replica at one rate, no spikes)."
    )
    rate_tolerance: float = Field(
        0.05, gt=0, lt=1, description="Bisection stops when (fail - pass) / pass <= this."
    )
    risk_runs: int = Field(
        20, ge=0, description="Monte Carlo runs per finalist for its failover risk (0: skip risk)."
    )
    finalists: int = Field(5, ge=1, description="Cheapest feasible candidates whose failover risk is run.")
    pricing: Literal["on_demand", "committed"] = Field(
        "on_demand", description="Which column of the price table to use."
    )

    @field_validator("space")
    @classmethod
    def _non_empty(cls, space: dict) -> dict:
        for name, dim in space.items():
            if not dim:
                raise ValueError(f"dimension '{name}' has no values")
            if isinstance(dim, dict) and not all(isinstance(o, dict) for o in dim.values()):
                raise ValueError(f"dimension '{name}': named options must each be a mapping of overrides")
        return space

    def candidates(self) -> list[tuple[dict[str, str], Option]]:
        """(choice per dimension, overrides) for every point of the space, in a stable order."""
        names, choices = [], []
        for name, dim in self.space.items():
            names.append(name)
            if isinstance(dim, dict):
                choices.append([(label, dict(option)) for label, option in dim.items()])
            else:
                choices.append([(str(value), {name: value}) for value in dim])
        out = []
        for combo in itertools.product(*choices):
            picked = {name: label for name, (label, _) in zip(names, combo, strict=True)}
            overrides: Option = {}
            for _, option in combo:
                overrides.update(option)
            out.append((picked, overrides))
        return out
