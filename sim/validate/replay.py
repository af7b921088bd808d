"""Replaying recorded runs through the simulator: predicted vs measured, run by run and over a whole set.

Each recorded run (sim/validate/recorded.py) becomes a scenario file -- with its exact requests as a trace
file when the record has them -- that is simulated like any other (so `simulate <out>/<run>/scenario.yaml`
reproduces the prediction) and compared metric by metric with what was measured, in the same table as
`validate run`. Over many runs the errors are summarised as the mean absolute percentage error (MAPE) of
each metric, overall and per group of runs sharing a configuration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sim.errors import InputError
from sim.loader import load_scenario
from sim.metrics.summary import summarize
from sim.resolve import resolve
from sim.run import run_simulation
from sim.validate.compare import Tolerances, compare
from sim.validate.recorded import RecordedRun

HEADLINE = ("ttft_ms_mean", "tpot_ms_mean", "e2e_ms_mean")


@dataclass
class ReplayOutcome:
    run: RecordedRun
    scenario_path: Path
    step_times: str  # where the prediction's step times came from
    predicted: dict
    measured: dict
    comparison: pd.DataFrame
    verdict: dict
    error: str | None = None  # the run could not be simulated (e.g. the model does not fit), and why

    def headline(self) -> dict:
        """measured, predicted and relative error of the mean TTFT, TPOT and E2E (where measured)."""
        row: dict = {"run": self.run.name, "group": self.run.group, "step_times": self.step_times}
        for key in HEADLINE:
            m = self.measured.get(key)
            if m is None:
                continue
            p = self.predicted.get(key, np.nan)
            row |= {f"{key}_measured": m, f"{key}_predicted": p, f"{key}_error": (p - m) / m}
            if key in self.run.reference:
                row[f"{key}_reference_error"] = (self.run.reference[key] - m) / m
        if self.error:
            row["error"] = self.error
        return row


def write_scenario(run: RecordedRun, folder: Path, overrides: Iterable[str]) -> Path:
    """The run as a scenario file (and its trace) in folder; returns the scenario's path."""
    folder.mkdir(parents=True, exist_ok=True)
    scenario = dict(run.scenario)
    if run.requests is not None:
        run.requests.to_csv(folder / "trace.csv", index=False, float_format="%.9f")
        scenario["workload"] = {"lengths": {"kind": "trace", "path": "trace.csv"}, "request_timeout_s": 36000}
    path = folder / "scenario.yaml"
    header = f"# Replay of {run.name}: {run.measured_by}\n" + "".join(f"# note: {n}\n" for n in run.notes)
    if overrides:
        header += "".join(f"# replayed with --set {o}\n" for o in overrides)
    path.write_text(header + yaml.safe_dump(scenario, sort_keys=False))
    return path


def measured_summary(run: RecordedRun, slo) -> dict:
    """What was measured, in summary keys: from the per-request table when there is one."""
    if run.measured_table is None:
        return dict(run.measured)
    empty = np.empty(0)
    summary = summarize(run.measured_table, empty, empty.astype(np.int64), slo)
    return {k: v for k, v in summary.items() if not k.startswith("itl_")}  # no per-token times recorded


def replay_one(run: RecordedRun, folder: Path, overrides: Iterable[str], tol: Tolerances) -> ReplayOutcome:
    overrides = list(overrides)
    path = write_scenario(run, folder, overrides)
    try:
        resolved = resolve(load_scenario(path, overrides))
        result = run_simulation(resolved)
    except InputError as err:
        return ReplayOutcome(run, path, "-", {}, dict(run.measured), pd.DataFrame(), {}, error=str(err))
    measured = measured_summary(run, resolved.slo)
    reference = run.reference if run.reference_name else None
    comparison, verdict = compare(result.summary, measured, tol, reference)
    return ReplayOutcome(run, path, resolved.step_times, result.summary, measured, comparison, verdict)


def mape(outcomes: list[ReplayOutcome], by_group: bool = False) -> pd.DataFrame:
    """Mean absolute percentage error of each headline metric (and of the reference simulator's, where
    published), over all runs that could be simulated, or per group."""
    rows = pd.DataFrame([o.headline() for o in outcomes if o.error is None])
    if rows.empty:
        return rows
    columns = [c for c in rows.columns if c.endswith("_error")]
    keys = ["group"] if by_group else []
    absolute = rows[keys + columns].copy()
    absolute[columns] = absolute[columns].abs()
    if by_group:
        table = absolute.groupby("group").mean()
        table.insert(0, "runs", rows.groupby("group").size())
        return table.reset_index()
    table = absolute[columns].mean().to_frame().T
    table.insert(0, "runs", len(rows))
    return table


def write_outcome(outcome: ReplayOutcome, folder: Path) -> list[Path]:
    """validation.md and validation.json of one replayed run, beside its scenario."""
    import json

    run = outcome.run
    lines = [f"# Replay: {run.name}", "", f"Measured: {run.measured_by}.", ""]
    lines += [f"Predicted: servesim, step times from {outcome.step_times} ({outcome.scenario_path.name})."]
    lines += [""] + [f"- {note}" for note in run.notes] + [""]
    if outcome.error:
        lines.append(f"Not simulated: {outcome.error}")
    else:
        ref = run.reference_name
        lines.append("| metric | predicted | measured | error |" + (f" {ref} error |" if ref else ""))
        lines.append("|---|---:|---:|---:|" + ("---:|" if ref else ""))
        for row in outcome.comparison.to_dict("records"):
            cells = f"| {row['metric']} | {row['predicted']:.4g} | {row['measured']:.4g} | {row['rel_error']:+.1%} |"
            if ref:
                other = row.get("reference_rel_error")
                cells += f" {other:+.1%} |" if other is not None and np.isfinite(other) else " |"
            lines.append(cells)
    paths = [folder / "validation.md", folder / "validation.json"]
    paths[0].write_text("\n".join(lines) + "\n")
    doc = {
        "run": run.name,
        "measured_by": run.measured_by,
        "notes": list(run.notes),
        "step_times": outcome.step_times,
        "error": outcome.error,
        "comparison": outcome.comparison.to_dict("records"),
        "predicted": outcome.predicted,
        "measured": outcome.measured,
        "reference": {"name": run.reference_name, "values": run.reference} if run.reference_name else None,
    }
    paths[1].write_text(json.dumps(doc, indent=2, default=float) + "\n")
    return paths
