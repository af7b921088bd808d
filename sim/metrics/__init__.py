"""Metrics with the exact definitions of `vllm bench serve` and the seed harness (docs/references.md#seed-harness and #vllm-bench-serve-metrics)."""
