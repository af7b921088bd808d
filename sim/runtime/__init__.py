"""Runtime paths: how vLLM's CUDA (dynamic shapes, CUDA graphs) and XLA (static buckets, precompile,
compile on a missed shape) executors turn a scheduled step into device work, and how long they take to
start. Each runtime wraps the base step-cost model of a replica."""
