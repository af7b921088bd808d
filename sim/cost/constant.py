"""A fixed step time: a closed-form queueing what-if (M/D/1 and friends) and a test fixture. Stateless."""

from __future__ import annotations

from sim.cost.base import StepBatch, StepCost, StepCostModel


class ConstantStepCost(StepCostModel):
    name = "constant"

    def __init__(self, step_s: float):
        self.step_s = step_s
        self.provenance = {"step_s": f"{step_s} s, given in the scenario"}

    def step_cost(self, batch: StepBatch) -> StepCost:
        return StepCost(seconds=self.step_s, overhead_s=self.step_s, num_tokens=batch.num_tokens)
