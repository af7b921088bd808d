"""The time-series figure of a run: load vs goodput, TTFT, queue and batch, KV use."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sim.report.figures import save_figure  # noqa: E402
from sim.run import SimulationResult  # noqa: E402


def plot_timeseries(result: SimulationResult, path: Path) -> Path:
    ts = result.timeseries
    t = (ts["t_start_s"] + ts["t_end_s"]) / 2
    slo = result.resolved.slo
    fig, axes = plt.subplots(5, 1, figsize=(10, 12), sharex=True)
    ax = axes[0]
    ax.plot(t, ts["arrival_rate_rps"], label="arrivals", color="tab:gray")
    ax.plot(t, ts["goodput_rps"], label="goodput (both SLOs met)", color="tab:green")
    ax.set_ylabel("requests/s")
    ax.legend(loc="upper right")
    ax = axes[1]
    ax.plot(t, ts["ttft_p50_ms"], label="TTFT p50", color="tab:blue")
    ax.plot(t, ts["ttft_p99_ms"], label="TTFT p99", color="tab:red")
    ax.axhline(slo.ttft_ms, color="black", linestyle="--", linewidth=1, label=f"TTFT SLO {slo.ttft_ms:g} ms")
    ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.legend(loc="upper right")
    ax = axes[2]
    ax.plot(t, ts["waiting"], label="waiting", color="tab:orange")
    ax.plot(t, ts["running"], label="running", color="tab:purple")
    ax.set_ylabel("requests")
    ax.legend(loc="upper right")
    ax = axes[3]
    ax.plot(t, ts["kv_used_frac"] * 100, color="tab:brown")
    ax.set_ylabel("KV blocks used %")
    ax = axes[4]
    ax.step(t, ts["replicas_desired"], "--", where="mid", color="tab:gray", label="desired")
    ax.step(t, ts["replicas_ready"], where="mid", color="tab:green", label="ready")
    ax.step(t, ts["replicas_starting"], where="mid", color="tab:orange", label="starting (cold start)")
    ax.set_ylabel("replicas")
    ax.legend(loc="upper right")
    ax.set_xlabel("simulated time (s)")
    sc = result.resolved.scenario
    return save_figure(
        fig,
        f"{sc.name}: {result.resolved.model.name} on {result.resolved.hardware.name} x{sc.fleet.replicas} "
        f"(simulated, {result.cost_model_name} step costs)",
        path,
    )
