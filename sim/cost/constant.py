"""A fixed step time: a closed-form queueing what-if (M/D/1 and friends) and a test fixture."""

from __future__ import annotations

from sim.cost.base import StepBatch, StepCost


class ConstantStepCost:
    name = "constant"

    def __init__(self, step_s: float):
        self.step_s = step_s
        self.provenance = {"step_s": f"{step_s} s, given in the scenario"}
        self._cost = StepCost(seconds=step_s, overhead_s=step_s)

    def step_cost(self, batch: StepBatch) -> StepCost:
        return self._cost
