#!/usr/bin/env bash
# Device check for the kernel-table profiles: on a lent NVIDIA H100 or H200, time real vLLM engine steps of
# Llama-3.1-8B (dummy weights, `calibrate --method vllm`) and compare them, step by step, with what the
# shipped kernel-table profile of the same GPU predicts. Budget: under 8 minutes (the quick grid).
#
#   bash benchmarks/device_check.sh            # writes results/device_check/{measured.json,comparison.md}
#
# Needs CUDA vLLM in the environment (pip install vllm) -- not the CPU build -- and one visible GPU. The
# measured profile can be kept with its provenance:  cp results/device_check/measured.json profiles/...
set -euo pipefail
cd "$(dirname "$0")/.."
out=results/device_check
mkdir -p "$out"

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
case "$gpu" in
  *H200*) host=h200 ;;
  *H100*) host=h100 ;;
  *) echo "device_check: needs an H100 or H200; this machine has '$gpu'" >&2; exit 2 ;;
esac
echo "device_check: $gpu -> --host $host"

timeout 420 calibrate --host "$host" --model llama-3.1-8b --method vllm --quick --force \
  --out "$out/measured.json"

python3 - "$out/measured.json" "profiles/$host-llama-3.1-8b.json" "$out/comparison.md" <<'EOF'
"""Each measured engine step against the kernel-table profile's fit at the same features."""
import sys

import numpy as np

from sim.profile import load_profile

measured, tables, report = sys.argv[1:4]
m, t = load_profile(measured).steps, load_profile(tables).steps
lines = [
    f"# {m.provenance.device_kind}: measured vLLM steps vs the kernel-table profile",
    "",
    f"measured: {m.provenance.tool} ({m.provenance.date}); tables: {t.provenance.notes}",
    "",
    "| kind | tokens | seqs | KV tokens | measured ms | kernel tables ms | error |",
    "|---|---:|---:|---:|---:|---:|---:|",
]
errors = []
for s in m.samples:
    predicted = t.fit.predict(s.num_tokens, s.attention_pairs, s.kv_read_tokens, s.num_seqs)
    error = (predicted - s.seconds) / s.seconds
    errors.append(error)
    lines.append(
        f"| {s.kind} | {s.num_tokens} | {s.num_seqs} | {s.kv_read_tokens} | {s.seconds * 1e3:.2f} | "
        f"{predicted * 1e3:.2f} | {error:+.1%} |"
    )
e = np.abs(errors)
lines += ["", f"{len(e)} steps: median |error| {np.median(e):.1%}, p95 {np.percentile(e, 95):.1%}, "
          f"mean signed error {np.mean(errors):+.1%}"]
open(report, "w").write("\n".join(lines) + "\n")
print("\n".join(lines[-1:]))
EOF
echo "device_check: $out/comparison.md"
