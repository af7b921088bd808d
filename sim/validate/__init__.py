"""Validation: the same workload replayed against a live server and simulated, and the difference."""
