"""The cost of a speculative decoding step: the target verifying 1 + k tokens per decoding request (the
runtime prices that batch like any other, bucketed on TPU), plus the proposer drafting the next k.

Proposers (vLLM's methods, docs/references.md#speculative-decoding):
- ``ngram``: prompt lookup on the host; no device time. Its host time is not modelled separately (it is a
  string match over the request's tokens, inside the per-step host overhead).
- ``eagle``: a one-layer draft head on the target's hidden states, sharing its embedding and LM head; it
  runs k times per step over the batch's sequences. Priced as k decode steps of a one-layer model of the
  target's shape.
- ``draft_model``: a smaller model of the same family run k times per step. Priced as k decode steps of
  that model.
Both drafters are priced by the datasheet roofline of the target's hardware (a profile measures the target
only); the step's ``proposer_s`` says how much of its time they took.
"""

from __future__ import annotations

from sim.cost.base import DeviceTimeModel, StepBatch, StepColumns, StepCost, StepCostModel


class SpeculativeStepCost(StepCostModel):
    """A replica's step cost with a proposer: the target's step (the wrapped model) plus k drafter steps."""

    def __init__(self, target: StepCostModel, drafter: DeviceTimeModel | None, num_speculative_tokens: int):
        self.target = target
        self.drafter = drafter
        self.k = num_speculative_tokens
        self.name = target.name + (f" + {drafter.name} proposer" if drafter is not None else "")
        self.provenance = target.provenance
        self.keeps_step_state = target.keeps_step_state

    def step_cost(self, batch: StepBatch) -> StepCost:
        cost = self.target.step_cost(batch)
        seqs = batch.num_sampled_seqs  # every request that sampled gets k proposals for its next step
        if self.drafter is not None and seqs:
            context = batch.decode_context_tokens + sum(batch.prefill_context_tokens)
            draft = self.drafter.parts(StepBatch.decode(seqs, context), 0, 0)
            proposer = self.k * draft.device_s
            cost.proposer_s = proposer
            cost.seconds += proposer
        return cost

    def retract(self, steps: StepColumns) -> None:
        self.target.retract(steps)
