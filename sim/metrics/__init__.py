"""Metrics with the exact definitions of `vllm bench serve` and the seed harness (seed_harness.md §1)."""
