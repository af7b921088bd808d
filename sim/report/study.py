"""Files and figures of a many-run study (variants and/or Monte Carlo runs).

runs.csv            one row per run: headline numbers, spike window, verdict
runs_series.csv     every run's windowed attainment and goodput (long form)
aggregate.csv       per variant and metric: mean, confidence interval, 5/50/95th percentiles
risk.csv            per variant: breaches / runs and the failover-risk interval
study.json          the above plus the objective and the methods, for scripts
variants.md         the side-by-side table
fan_chart.png       windowed goodput and attainment over time: median and 5-95% band per variant
replicas.png        ready vs desired replicas over time (median over runs) per variant
recovery.png        histogram of time to recover per variant
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sim import __version__  # noqa: E402
from sim.document import json_safe  # noqa: E402
from sim.report.figures import save_figure  # noqa: E402
from sim.report.tables import markdown_table  # noqa: E402
from sim.risk.study import Study  # noqa: E402

METHODS = {
    "seeds": "run i uses seed base + i; runs are independent",
    "mean_interval": "Student-t interval over runs: mean +- t((1+c)/2, n-1) s / sqrt(n)",
    "risk_interval": "Wilson score interval for breaches / runs",
    "windowed_attainment": "good / arrived for the requests that arrived in each window; failures are not good",
    "time_to_recover": "start of the first window below target to the end of the last one (0 if none)",
    "spike_window": "first spike's ramp start to the last spike's ramp end",
}

HEADLINE = [  # (metric, column title, format)
    ("goodput_rps", "goodput req/s", "{:.2f}"),
    ("slo_attainment_all", "attainment", "{:.1%}"),
    ("spike_attainment", "spike attainment", "{:.1%}"),
    ("failed_requests", "failed", "{:.0f}"),
    ("time_to_recover_s", "recover s", "{:.0f}"),
    ("peak_waiting", "peak queue", "{:.0f}"),
    ("replica_hours", "replica-h", "{:.2f}"),
    ("usd_per_1m_good_requests", "$/1M good", "{:.2f}"),
    ("prefix_cache_hit_rate", "cache hits", "{:.0%}"),
]


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """Runs end at different times: pad every series with NaN to the longest."""
    width = max(len(a) for a in arrays)
    out = np.full((len(arrays), width), np.nan)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
    return out


def side_by_side(study: Study) -> pd.DataFrame:
    """One row per variant: mean [CI] of the headline metrics, failover risk [CI], cold start."""
    agg = study.aggregate().set_index(["variant", "metric"])
    risk = study.risk().set_index("variant")
    rows = []
    for label in study.labels:
        row = {"variant": label or study.name, "runs": int(risk.loc[label, "runs"])}
        row["step times"] = next(d.step_times for d in study.digests if d.label == label)
        ttr = risk.loc[label, "time_to_ready_s"]
        row["new replica ready s"] = "-" if ttr is None or not np.isfinite(ttr) else f"{ttr:.0f}"
        for metric, title, fmt in HEADLINE:
            if (label, metric) not in agg.index:
                continue
            a = agg.loc[(label, metric)]
            text = fmt.format(a["mean"]) if np.isfinite(a["mean"]) else "-"
            if study.runs > 1 and np.isfinite(a["ci_low"]):
                text += f" [{fmt.format(a['ci_low'])}, {fmt.format(a['ci_high'])}]"
            row[title] = text
        r = risk.loc[label]
        # the interval even for one run: a bare 0% or 100% from one seed would read as a certainty
        row["failover risk"] = f"{r['risk']:.0%} [{r['ci_low']:.0%}, {r['ci_high']:.0%}]"
        rows.append(row)
    return pd.DataFrame(rows)


def write_study(study: Study, out_dir: Path, *, plot: bool) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    def save_csv(frame: pd.DataFrame, name: str) -> None:
        path = out_dir / name
        frame.to_csv(path, index=False, float_format="%.9g")
        paths.append(path)

    save_csv(study.runs_table(), "runs.csv")
    series_rows = []
    for d in study.digests:
        s = d.series
        series_rows.append(
            pd.DataFrame(
                {
                    "variant": d.label,
                    "run": d.run,
                    "t_start_s": s.t_start_s,
                    "arrived": s.arrived,
                    "good": s.good,
                    "attainment": s.attainment,
                }
            )
        )
    save_csv(pd.concat(series_rows, ignore_index=True), "runs_series.csv")
    save_csv(study.aggregate(), "aggregate.csv")
    save_csv(study.risk(), "risk.csv")
    table = side_by_side(study)
    md = out_dir / "variants.md"
    md.write_text(
        f"# {study.name}: {study.runs} run(s) per variant (simulated by servesim {__version__})\n\n"
        + markdown_table(table, floatfmt=None)
        + f"\n\nIntervals: {study.confidence:.0%} confidence; {METHODS['mean_interval']}; "
        f"failover risk: {METHODS['risk_interval']}.\n"
    )
    paths.append(md)
    objective = study.base.monte_carlo.objective
    doc = {
        "name": study.name,
        "servesim_version": __version__,
        "runs_per_variant": study.runs,
        "confidence": study.confidence,
        "objective": objective.model_dump(),
        "methods": METHODS,
        "risk": study.risk().to_dict("records"),
        "aggregate": study.aggregate().to_dict("records"),
        "provenance": "simulated; each run's sources are in its variant folder's summary.json "
        "(single-run variants) or come from the same scenario files",
    }
    path = out_dir / "study.json"
    path.write_text(json.dumps(json_safe(doc), indent=2) + "\n")
    paths.append(path)
    if plot:
        paths += [_fan_chart(study, out_dir / "fan_chart.png"), _replicas(study, out_dir / "replicas.png")]
        if study.runs > 1:
            paths.append(_recovery(study, out_dir / "recovery.png"))
    return paths


def _across_runs(values: np.ndarray, percentiles: list[float]) -> np.ndarray:
    """Percentiles over runs (rows) per window (column), NaN-aware."""
    with warnings.catch_warnings():  # all-NaN columns (no run reached that window) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(values, percentiles, axis=0)


def _fan_chart(study: Study, path: Path) -> Path:
    objective = study.base.monte_carlo.objective
    fig, axes = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    for k, label in enumerate(study.labels):
        ds = study.of(label)
        color = f"C{k}"
        for ax, values in (
            (axes[0], _stack([d.series.goodput_rps for d in ds])),
            (axes[1], _stack([d.series.attainment for d in ds]) * 100),
        ):
            x = np.arange(values.shape[1]) * objective.window_s  # window starts, as attainment_series
            lo, mid, hi = _across_runs(values, [5, 50, 95])
            ax.plot(x, mid, color=color, label=f"{label or study.name} (median)")
            if len(ds) > 1:
                ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)
    axes[0].set_ylabel(f"goodput, req/s ({objective.window_s:g} s windows)")
    axes[0].legend(loc="upper right")
    axes[1].axhline(
        objective.min_attainment * 100,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"target {objective.min_attainment:.0%}",
    )
    axes[1].set_ylabel("SLO attainment of arrivals, %")
    axes[1].set_xlabel("simulated time (s)")
    axes[1].legend(loc="lower right")
    band = "; bands: 5-95% of runs" if study.runs > 1 else ""
    return save_figure(fig, f"{study.name}: {study.runs} simulated run(s) per variant{band}", path)


def _replicas(study: Study, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(11, 4))
    for k, label in enumerate(study.labels):
        ds = study.of(label)
        w = ds[0].series_window_s
        for values, style, what in (
            (_stack([d.desired_replicas for d in ds]), "--", "desired"),
            (_stack([d.ready_replicas for d in ds]), "-", "ready"),
        ):
            (mid,) = _across_runs(values, [50])
            ax.step(
                np.arange(len(mid)) * w,
                mid,
                style,
                color=f"C{k}",
                where="post",
                label=f"{label or study.name} {what}",
            )
    ax.set_ylabel("replicas (median over runs)")
    ax.set_xlabel("simulated time (s)")
    ax.legend(loc="upper left", fontsize="small", ncol=2)
    return save_figure(fig, f"{study.name}: desired vs ready replicas (simulated)", path)


def _recovery(study: Study, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    values = [[d.metrics["time_to_recover_s"] for d in study.of(label)] for label in study.labels]
    ax.hist(values, bins=20, label=[label or study.name for label in study.labels])
    ax.set_xlabel("time to recover, s (attainment back above target)")
    ax.set_ylabel("runs")
    ax.legend()
    return save_figure(
        fig, f"{study.name}: time to recover over {study.runs} simulated runs per variant", path
    )
