#!/usr/bin/env bash
# Regenerate the shipped GPU step profiles from NVIDIA's measured kernel tables (needs servesim[gpu-data]).
# Each line writes profiles/<hardware>-<model>[-tpN][-<dtype>].json, which `profile: auto` picks for a
# scenario of that hardware, model, TP and precision. See docs/calibration.md (kernel tables).
set -euo pipefail
cd "$(dirname "$0")/.."
kt() { calibrate --method kernel-tables --force "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }; echo "ok: $*"; }

# The seed study's hardware, and the public validation runs
kt --host rtx-pro-6000 --model llama-3.1-8b
for tp in 2 4 8; do kt --host rtx-pro-6000 --model llama-3.1-70b --tp "$tp"; done
kt --host rtx-pro-6000 --model qwen3-32b
kt --host rtx-pro-6000 --model qwen3-32b --tp 2
kt --host rtx-pro-6000 --model qwen3-30b-a3b

# Datacenter GPUs: Llama-3.1-8B and -70B in bf16
for host in h100 h200; do
  kt --host "$host" --model llama-3.1-8b
  for tp in 2 4 8; do kt --host "$host" --model llama-3.1-70b --tp "$tp"; done
done
kt --host l40s --model llama-3.1-8b
kt --host a100-80g --model llama-3.1-8b

# The configurations of aiconfigurator-core's silicon_sample.csv vLLM dense rows (validate replay silicon)
for tp in 1 2 4 8; do kt --host h200 --model llama-3.1-8b --tp "$tp" --dtype fp8; done
for tp in 1 2 4 8; do kt --host h200 --model llama-3.1-70b --tp "$tp" --dtype fp8; done
for tp in 2 4 8; do kt --host h100 --model llama-3.1-70b --tp "$tp" --dtype fp8; done
for tp in 1 2 4 8; do
  kt --host b200 --model llama-3.1-70b --tp "$tp" --dtype fp8
  kt --host b200 --model llama-3.1-70b --tp "$tp" --dtype nvfp4
  kt --host h100 --model qwen3-32b --tp "$tp"
done
for tp in 1 2 8; do kt --host h100 --model qwen3-32b --tp "$tp" --dtype fp8; done
