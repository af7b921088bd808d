"""The cost_model section of a scenario: how engine steps are priced, owned by the step-cost layer
(sim/cost/). sim/scenario.py composes it; sim/cost/factory.py builds the model each kind names."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sim.strict import StrictModel


class RooflineCost(StrictModel):
    """Step time = max(FLOPs / (peak x flops_utilization), bytes / (bandwidth x mbu)) + step overhead.
    Left-out factors take the cited defaults in catalog/efficiency.yaml."""

    kind: Literal["roofline"] = "roofline"
    attention: Literal["roofline", "kernel"] = Field(
        "roofline",
        description="kernel: price attention with the profile's measured kernel times (its kernels section) "
        "instead of the roofline's attention FLOPs and KV reads.",
    )
    steps: Literal["profile", "roofline"] = Field(
        "profile",
        description="profile: a profile's step times replace the roofline's where it has them; roofline: keep "
        "the datasheet roofline's even then (the profile still gives compile and start-up times) -- e.g. to "
        "bracket a TPU profile whose compiler-estimated steps are known to be slow (docs/calibration.md).",
    )
    memory_bandwidth_utilization: float | None = Field(None, gt=0, le=1)
    flops_utilization: float | None = Field(None, gt=0, le=1)
    step_overhead_s: float | None = Field(None, ge=0)


class ConstantCost(StrictModel):
    """Every engine step takes step_s seconds, whatever it holds: for closed-form what-ifs and tests."""

    kind: Literal["constant"]
    step_s: float = Field(..., gt=0)


CostModelSpec = Annotated[RooflineCost | ConstantCost, Field(discriminator="kind")]
