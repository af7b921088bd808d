"""The scenario's `plan` block: the space `plan` searches and how carefully it searches it."""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import Field, field_validator

from sim.strict import StrictModel

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
