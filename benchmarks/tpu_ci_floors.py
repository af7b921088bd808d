"""Sanity of TPU step times against published lower bounds: tpu-inference's CI throughput floors.

    python benchmarks/tpu_ci_floors.py            # step times from profile: auto, then the roofline

The CI benchmark (as issue #20 quotes it: 1000 prompts of ~1800 input and 128 output tokens sent at rate
inf) must reach at least 10.77 req/s for Llama-3.1-8B on one v6e chip and 7.0 req/s for a Llama-3.3-70B
shaped model (Llama-3.1-70B's shape here) on v6e-8; PyTorch/XLA's mean TPOT for the 8B was 32.9 ms. These
are floors the real engine clears, so a simulated throughput *below* them means the step times are too
slow; one above them is consistent, not confirmed. docs/calibration.md reports the margins.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.loader import load_scenario_dict  # noqa: E402
from sim.resolve import resolve  # noqa: E402
from sim.run import run_simulation  # noqa: E402

CASES = [  # (label, model, TP, floor req/s, published mean TPOT ms or None)
    ("Llama-3.1-8B, v6e-1", "llama-3.1-8b", 1, 10.77, 32.9),
    ("Llama-3.3-70B-shaped, v6e-8", "llama-3.1-70b", 8, 7.0, None),
]


def scenario(model: str, tp: int, profile: str) -> dict:
    return {
        "name": f"tpu_ci_{model}_tp{tp}",
        "model": model,
        "hardware": "tpu-v6e",
        "profile": profile,
        "engine": {"max_model_len": 2048},
        "fleet": {"tensor_parallel_size": tp},
        "workload": {
            "lengths": {"kind": "fixed", "input_len": 1800, "output_len": 128},
            "arrivals": {"rate": "inf"},
        },
        "num_requests": 1000,
    }


def main() -> None:
    print(
        f"{'case':32} {'step times':22} {'req/s':>7} {'floor':>6} {'margin':>8} {'TPOT ms':>8} {'published':>9}"
    )
    for label, model, tp, floor, tpot in CASES:
        for profile in ("auto", "none"):
            resolved = resolve(load_scenario_dict(scenario(model, tp, profile)))
            summary = run_simulation(resolved).summary
            rps = summary["request_throughput_rps"]
            print(
                f"{label:32} {resolved.step_times:22} {rps:7.2f} {floor:6.2f} {rps / floor - 1:+8.1%} "
                f"{summary['tpot_ms_mean']:8.1f} {'-' if tpot is None else f'{tpot:.1f}':>9}"
            )


if __name__ == "__main__":
    main()
