"""The step ledger: both recorders total every StepCost field, and agree step for step."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.cost.base import STEP_FIELDS, StepColumns, StepCost
from sim.replica.ledger import StepLedger

times = st.floats(min_value=0.0, max_value=0.1, allow_nan=False, allow_infinity=False)
step = st.builds(
    StepCost,
    seconds=times,
    compute_s=times,
    memory_s=times,
    communication_s=times,
    overhead_s=times,
    compile_stall_s=st.one_of(st.just(0.0), times),
    num_tokens=st.integers(0, 8192),
    padding_tokens=st.integers(0, 512),
    extrapolated=st.booleans(),
)


def test_every_step_field_has_a_total_and_columns_match_the_fields():
    ledger = StepLedger()
    assert list(ledger.stats().totals) == list(STEP_FIELDS)
    assert [f for f in StepColumns.__dataclass_fields__] == list(STEP_FIELDS)


@settings(max_examples=200, deadline=None)
@given(st.lists(step, min_size=1, max_size=40), st.data())
def test_runs_and_single_steps_give_identical_totals(steps, data):
    """Recording steps one by one or in runs of any lengths (with extra priced steps not kept) gives the
    same totals, bit for bit."""
    one_by_one, in_runs = StepLedger(), StepLedger()
    ends = [float(i) for i in range(len(steps))]
    for cost, end in zip(steps, ends, strict=True):
        one_by_one.record(cost, end)
    i = 0
    while i < len(steps):
        k = data.draw(st.integers(1, len(steps) - i))
        extra = data.draw(st.integers(0, 3))  # priced beyond the run, retracted: never recorded
        priced = steps[i : i + k] + steps[: min(extra, len(steps))]
        in_runs.record_run(StepColumns.from_steps(priced), ends[i : i + k])
        i += k
    assert in_runs.stats() == one_by_one.stats()
    assert in_runs.stall_events == one_by_one.stall_events
    assert list(in_runs.step_end_s) == ends


def test_hand_computed_totals():
    ledger = StepLedger()
    ledger.record(StepCost(seconds=0.5, compute_s=0.4, memory_s=0.2, num_tokens=10), 0.5)
    ledger.record_empty(0.5)
    ledger.record_run(
        StepColumns.from_steps(
            [
                StepCost(seconds=0.25, compute_s=0.1, memory_s=0.2, num_tokens=4, compile_stall_s=0.125),
                StepCost(seconds=0.25, compute_s=0.1, memory_s=0.2, num_tokens=4),
            ]
        ),
        [0.75, 1.0],
    )
    stats = ledger.stats()
    assert stats.num_steps == 4 and stats.busy_s == pytest.approx(1.0) and stats.num_tokens == 18
    assert stats.compute_bound_steps == 1 and stats.compile_stalls == 1
    assert ledger.stall_events == [(0.75, 0.125)]
