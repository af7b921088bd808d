"""Files of a sweep: the point table and the start-up comparison (CSV and markdown), the plots of goodput,
P99 TTFT and P99 TPOT against the first grid key with one line per series (GPU and TPU side by side),
and each point's summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sim.report.figures import save_figure  # noqa: E402
from sim.report.tables import markdown_table  # noqa: E402
from sim.sweep import SweepResult  # noqa: E402


def plot_sweep(sweep: SweepResult, path: Path) -> Path | None:
    if not sweep.grid_keys:
        return None
    x = sweep.grid_keys[0]
    table = sweep.table[sweep.table["error"] == ""]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, col, label in zip(
        axes,
        ("goodput_rps", "ttft_p99_ms", "tpot_p99_ms"),
        ("goodput (req/s)", "P99 TTFT (ms)", "P99 TPOT (ms)"),
        strict=True,
    ):
        for series, group in table.groupby("series", sort=False):
            group = group.sort_values(x, key=lambda s: s.astype(float))
            ax.plot(group[x].astype(float), group[col], marker="o", label=series or "base")
        ax.set_xlabel(x)
        ax.set_ylabel(label)
        if col != "goodput_rps":
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    return save_figure(fig, f"{sweep.name} (simulated)", path)


def write_sweep(sweep: SweepResult, out_dir: Path, *, plot: bool) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (("sweep", sweep.table), ("startup", sweep.startup)):
        csv = out_dir / f"{name}.csv"
        frame.to_csv(csv, index=False, float_format="%.9g")
        md = out_dir / f"{name}.md"
        md.write_text(f"# {sweep.name}: {name} (simulated)\n\n" + markdown_table(frame))
        written += [csv, md]
    points_dir = out_dir / "points"
    for point, outcome in zip(sweep.points, sweep.outcomes, strict=True):
        if outcome.summary_document is not None:
            folder = points_dir / point.label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "summary.json").write_text(json.dumps(outcome.summary_document, indent=2) + "\n")
    if plot and (png := plot_sweep(sweep, out_dir / "sweep.png")):
        written.append(png)
    return written
