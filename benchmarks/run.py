"""Simulator speed: simulated requests per wall second, engine steps per second, peak RSS.

    python benchmarks/run.py [NAME ...]        # all benchmarks, or the named ones
    SERVESIM_EVENT_SKIPPING=0 python benchmarks/run.py ...   # the reference path, for comparison

  single_replica_10k / _100k  llama-3.1-8b on h100, fixed 512 -> 256, Poisson 10 req/s (the Vidur setup)
  fleet8_100k                 8 replicas, ShareGPT-like lengths, 80 req/s
  fleet64_1m                  64 replicas, ShareGPT-like lengths, 640 req/s, 1M requests
  flash_spike_mc              scenarios/flash_spike.yaml (its 4 variants) x 100 Monte Carlo runs on 2 processes
  xla_buckets                 8 TPU v6e replicas, bucket padding, precompile skipped (compile-on-miss path)

Each benchmark runs in a fresh subprocess so its peak RSS is its own (for flash_spike_mc: the parent's;
its workers are separate processes). Prints a table and writes benchmarks/out/results.json. Figures are
recorded in docs/performance.md with the machine they ran on.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SINGLE = {
    "name": "bench_single_replica",
    "model": "llama-3.1-8b",
    "hardware": "h100",
    "workload": {"lengths": {"kind": "fixed", "input_len": 512, "output_len": 256}, "arrivals": {"rate": 10}},
}
FLEET8 = {
    "name": "bench_fleet8",
    "model": "llama-3.1-8b",
    "hardware": "h100",
    "fleet": {"replicas": 8, "router": "least_outstanding"},
    "workload": {"lengths": {"kind": "sharegpt_like"}, "arrivals": {"rate": 80}},
}

FLEET64 = {
    "name": "bench_fleet64",
    "model": "llama-3.1-8b",
    "hardware": "h100",
    "fleet": {"replicas": 64, "router": "least_outstanding"},
    "workload": {"lengths": {"kind": "sharegpt_like"}, "arrivals": {"rate": 640}},
    "metrics": {"window_s": 10},
}
XLA = {
    "name": "bench_xla_buckets",
    "model": "llama-3.1-8b",
    "hardware": "tpu-v6e",
    "profile": str(ROOT / "profiles" / "tpu-v6e-llama-3.1-8b.json"),
    "engine": {"max_model_len": 4096, "xla": {"precompile": False, "bucket_padding_gap": 64}},
    "fleet": {"replicas": 8, "router": "least_outstanding"},
    "workload": {
        "lengths": {"kind": "sharegpt_like", "max_prompt_len": 2048},
        "arrivals": {"process": "gamma", "rate": 80, "burstiness": 0.5},
    },
}

MULTITURN = {
    "name": "bench_multiturn",
    "model": "llama-3.1-8b",
    "hardware": "h100",
    "engine": {"max_model_len": 65536},
    "fleet": {"replicas": 8, "router": "prefix_aware"},
    "workload": {
        "lengths": {"kind": "sharegpt_like", "max_prompt_len": 1024},
        "arrivals": {"rate": 16},
        "prefix": {"tenants": 8, "tokens": 1000},
        "conversations": {"turns": 5, "think_time_s": 5},
    },
}
MULTITURN_NO_CACHE = {
    **MULTITURN,
    "name": "bench_multiturn_no_cache",
    "engine": {"max_model_len": 65536, "enable_prefix_caching": False},
}

BENCHMARKS = {
    "single_replica_10k": (SINGLE, 10_000),
    "single_replica_100k": (SINGLE, 100_000),
    "fleet8_100k": (FLEET8, 100_000),
    "fleet64_1m": (FLEET64, 1_000_000),
    "flash_spike_mc": ("scenarios/flash_spike.yaml", 100),
    "xla_buckets": (XLA, 100_000),
    "multiturn_100k": (MULTITURN, 100_000),
    "multiturn_no_cache_100k": (MULTITURN_NO_CACHE, 100_000),
}


def run_monte_carlo(path: str, runs: int) -> dict:
    from sim.risk.study import run_study

    started = time.perf_counter()
    study = run_study(ROOT / path, runs=runs, jobs=2)
    wall = time.perf_counter() - started
    requests = int(sum(d.series.arrived.sum() for d in study.digests))
    return {
        "name": "flash_spike_mc",
        "requests": requests,
        "wall_s": wall,
        "req_per_s": requests / wall,
        "engine_steps": None,
        "steps_per_s": None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # each worker's peak after its first and after its last run: flat means no memory held across runs
        "worker_peak_rss_mb": max(d.peak_rss_mb for d in study.digests),
        "worker_peak_rss_first_runs_mb": max(
            d.peak_rss_mb for d in study.digests[: max(1, len(study.digests) // 10)]
        ),
        "simulated_s": None,
        "completed": None,
        "runs": len(study.digests),
        "requests_csv_write_s": None,
        "requests_parquet_write_s": None,
    }


def run_one(name: str) -> dict:
    """Run one benchmark in this process and return its figures."""
    from sim.loader import load_scenario_dict
    from sim.report.files import write_table
    from sim.resolve import resolve
    from sim.run import run_simulation

    data, n = BENCHMARKS[name]
    if isinstance(data, str):
        return run_monte_carlo(data, n)
    resolved = resolve(load_scenario_dict({**data, "num_requests": n}))
    started = time.perf_counter()
    result = run_simulation(resolved)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    write_s = {}
    with tempfile.TemporaryDirectory() as tmp:  # the per-request table: the largest output
        for table_format in ("csv", "parquet"):
            t0 = time.perf_counter()
            write_table(result.table, Path(tmp) / "requests", table_format)
            write_s[table_format] = time.perf_counter() - t0
    return {
        "name": name,
        "requests": n,
        "wall_s": wall,
        "req_per_s": n / wall,
        "engine_steps": result.num_steps,
        "steps_per_s": result.num_steps / wall,
        "peak_rss_mb": peak_kib / 1024,
        "simulated_s": result.summary["duration_s"],
        "completed": result.summary["completed"],
        "requests_csv_write_s": write_s["csv"],
        "requests_parquet_write_s": write_s["parquet"],
    }


def main(names: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    rows = []
    for name in names or list(BENCHMARKS):
        out = subprocess.run(
            [sys.executable, __file__, "--one", name], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = Table(
        title=f"servesim speed ({platform.processor() or platform.machine()}, Python {platform.python_version()})"
    )
    columns = ("benchmark", "requests", "wall s", "req/s", "steps", "steps/s", "peak RSS MB", "simulated s")
    for col in (*columns, "requests.csv s", "requests.parquet s"):
        table.add_column(col, justify="right" if col != "benchmark" else "left")
    for r in rows:
        table.add_row(
            r["name"],
            f"{r['requests']:,}",
            f"{r['wall_s']:.1f}",
            f"{r['req_per_s']:,.0f}",
            "-" if r["engine_steps"] is None else f"{r['engine_steps']:,}",
            "-" if r["steps_per_s"] is None else f"{r['steps_per_s']:,.0f}",
            f"{r['peak_rss_mb']:.0f}",
            "-" if r["simulated_s"] is None else f"{r['simulated_s']:,.0f}",
            *(
                "-" if r[key] is None else f"{r[key]:.2f}"
                for key in ("requests_csv_write_s", "requests_parquet_write_s")
            ),
        )
    Console(width=140).print(table)
    for r in rows:
        if r.get("worker_peak_rss_mb") is not None:
            print(
                f"{r['name']}: worker peak RSS {r['worker_peak_rss_first_runs_mb']:.0f} MB after its first runs, "
                f"{r['worker_peak_rss_mb']:.0f} MB after all {r['runs']} (the parent's: {r['peak_rss_mb']:.0f} MB)"
            )
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(
        json.dumps({"machine": platform.uname()._asdict(), "results": rows}, indent=2)
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(run_one(sys.argv[2])))
    else:
        main(sys.argv[1:])
