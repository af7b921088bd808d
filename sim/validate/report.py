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
    ]
    lost = verdict.get("failures")
    if lost is not None:
        reasons = context.get("failure_reasons") or {}
        why = "; ".join(f"{n} x {reason}" for reason, n in reasons.items())
        lines += [
            f"Failed requests: {lost['measured']} measured ({why or 'none'}), {lost['predicted']} predicted"
            f" -- {'within' if lost['within'] else '**beyond**'} the allowance of {lost['allowed_extra']} more;"
            " latency statistics cover completed requests only.",
            "",
        ]
    if context.get("prefix_cache"):
        lines += [context["prefix_cache"], ""]
    lines += [
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


_LABELS = {"ttft_ms_mean": "mean TTFT", "tpot_ms_mean": "mean TPOT", "e2e_ms_mean": "mean E2E"}
PER_RUN_ROWS_SHOWN = 12  # longer sets list every run in replay.csv only


def _pct(value) -> str:
    return f"{value:+.1%}" if value is not None and np.isfinite(value) else "-"


def _mape_lines(table: pd.DataFrame, first: str) -> list[str]:
    errors = [c for c in table.columns if c.endswith("_error")]
    heads = []
    for c in errors:
        key = c.removesuffix("_reference_error").removesuffix("_error")
        heads.append(_LABELS[key] + (" (reference)" if c.endswith("_reference_error") else ""))
    lines = [f"| {first} | runs | " + " | ".join(heads) + " |", "|---|---:|" + "---:|" * len(errors)]
    for row in table.to_dict("records"):
        name = row.get("group", "all runs")
        cells = [f"{row[c]:.1%}" if np.isfinite(row[c]) else "-" for c in errors]
        lines.append(f"| {name} | {int(row['runs'])} | " + " | ".join(cells) + " |")
    return lines


def write_replay_summary(
    out_dir: Path, outcomes: list, overall: pd.DataFrame, groups: pd.DataFrame
) -> list[Path]:
    """replay.md (per-run errors when few, MAPE overall and per group) and replay.csv (every run)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame([o.headline() for o in outcomes])
    csv = out_dir / "replay.csv"
    rows.to_csv(csv, index=False, float_format="%.6g")
    lines = ["# Replay: predicted vs measured", ""]
    sources = sorted({o.step_times for o in outcomes if o.error is None})
    lines.append(f"{len(outcomes)} runs; step times from {', '.join(sources) or '-'}.")
    failed = [o for o in outcomes if o.error]
    if failed:
        lines.append(
            f"{len(failed)} not simulated: " + "; ".join(f"{o.run.name}: {o.error}" for o in failed[:5])
        )
    lines.append("")
    reference = next((o.run.reference_name for o in outcomes if o.run.reference_name), None)
    if len(outcomes) <= PER_RUN_ROWS_SHOWN:
        head = "| run | steps | mean TTFT meas / pred | mean TPOT meas / pred | mean E2E meas / pred |"
        lines += [head + (f" {reference} TTFT / TPOT / E2E |" if reference else ""), "|---|---|---|---|---|"]
        lines[-1] += "---|" if reference else ""
        for o in outcomes:
            h = o.headline()
            cells = []
            for key in ("ttft_ms_mean", "tpot_ms_mean", "e2e_ms_mean"):
                if f"{key}_measured" in h and f"{key}_predicted" in h:
                    cells.append(
                        f"{h[f'{key}_measured']:.1f} / {h[f'{key}_predicted']:.1f} ({_pct(h[f'{key}_error'])})"
                    )
                else:
                    cells.append("-")
            line = f"| {o.run.name} | {o.step_times} | " + " | ".join(cells) + " |"
            if reference:
                line += " " + " / ".join(_pct(h.get(f"{k}_reference_error")) for k in HEADLINE_KEYS) + " |"
            lines.append(line)
        lines.append("")
    if not overall.empty:
        lines += ["Mean absolute percentage error:", ""] + _mape_lines(overall, "set") + [""]
        if len(groups) > 1:
            lines += _mape_lines(groups, "group") + [""]
    md = out_dir / "replay.md"
    md.write_text("\n".join(lines) + "\n")
    return [md, csv]


HEADLINE_KEYS = ("ttft_ms_mean", "tpot_ms_mean", "e2e_ms_mean")
