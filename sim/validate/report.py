"""Validation report files: the comparison table (markdown + JSON), the verdict, each side's summary in the
harness schema, and a figure with CDF overlays and a per-request scatter of TTFT."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sim.report.figures import save_figure  # noqa: E402


def _cdf(ax, values, label):
    values = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    if len(values):
        ax.plot(values, np.arange(1, len(values) + 1) / len(values), label=label)


def plot_validation(predicted: pd.DataFrame, measured: pd.DataFrame, path: Path, title: str) -> Path:
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    for ax, col, label in zip(axes[:3], ("ttft_s", "tpot_s", "e2e_s"), ("TTFT", "TPOT", "E2E"), strict=True):
        _cdf(ax, predicted[col] * 1e3, "predicted")
        _cdf(ax, measured[col] * 1e3, "measured")
        ax.set_xlabel(f"{label} (ms)")
        ax.set_ylabel("fraction of requests")
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax = axes[3]
    both = predicted["success"].to_numpy() & measured["success"].to_numpy()
    x, y = measured["ttft_s"].to_numpy()[both] * 1e3, predicted["ttft_s"].to_numpy()[both] * 1e3
    ax.scatter(x, y, s=8, alpha=0.6)
    if len(x):
        lim = [0, max(x.max(), y.max()) * 1.05]
        ax.plot(lim, lim, color="black", linewidth=1, linestyle="--")
    ax.set_xlabel("measured TTFT (ms)")
    ax.set_ylabel("predicted TTFT (ms)")
    ax.set_title("per request")
    return save_figure(fig, title, path)


def write_validation(
    out_dir: Path,
    *,
    comparison: pd.DataFrame,
    verdict: dict,
    predicted_doc: dict,
    measured_doc: dict,
    context: dict,
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    doc = {"context": context, "verdict": verdict, "comparison": comparison.to_dict("records")}
    (out_dir / "validation.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
    lines = [
        f"# Validation: {context['scenario']} against {context['endpoint']}",
        "",
        f"Verdict: **{'PASS' if verdict['passed'] else 'FAIL'}** (tolerances: median {verdict['tolerances']['p50']:.0%}, "
        f"p99 {verdict['tolerances']['p99']:.0%}, goodput {verdict['tolerances']['goodput']:.0%})",
        "",
        f"Predicted: {context['predicted_by']}. Measured: {context['measured_by']}.",
        "",
        "| metric | predicted | measured | error | within |",
        "|---|---:|---:|---:|---|",
    ]
    for row in comparison.to_dict("records"):
        within = "" if row["within"] is None else ("yes" if row["within"] else "**no**")
        lines.append(
            f"| {row['metric']} | {row['predicted']:.3g} | {row['measured']:.3g} | "
            f"{row['rel_error']:+.1%} | {within} |"
        )
    (out_dir / "validation.md").write_text("\n".join(lines) + "\n")
    for name, d in (("predicted_summary.json", predicted_doc), ("measured_summary.json", measured_doc)):
        (out_dir / name).write_text(json.dumps(d, indent=2, default=float) + "\n")
    paths += [
        out_dir / n
        for n in ("validation.json", "validation.md", "predicted_summary.json", "measured_summary.json")
    ]
    return paths
