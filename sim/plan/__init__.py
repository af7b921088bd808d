"""Capacity planning: which configuration sustains a target load with the SLO attainment, at what cost.

spec.py (the scenario's `plan` block) -> search.py (candidates, per-replica capacity by bisection on rate,
fleet sizing, failover risk, ranking) -> sim/report/plan.py (tables, Pareto plot, the winner as a scenario).
Prices come from prices.py (catalog/prices.yaml or the user's own table).
"""
