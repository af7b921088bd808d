"""Step-cost models: how long one engine step takes, given what the scheduler put in it."""

from sim.cost.base import StepBatch, StepCost, StepCostModel
from sim.cost.factory import build_cost_model

__all__ = ["StepBatch", "StepCost", "StepCostModel", "build_cost_model"]
