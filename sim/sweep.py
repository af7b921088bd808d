"""Sweeps: one scenario run at many points -- each series (named overrides, e.g. one per hardware) over
the grid (the Cartesian product of listed values, e.g. request rates) -- collected into one table.

A point that cannot run (a model that does not fit the series' hardware) becomes a row with its reason
instead of stopping the sweep: "does not fit" is an answer too.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sim.errors import InputError
from sim.executor import LocalExecutor, Progress
from sim.loader import apply_overrides, load_scenario_dict, read_yaml, set_path
from sim.resolve import resolve
from sim.run import SimulationResult, run_simulation
from sim.scenario_studies import SweepSpec

METRICS = {  # table column -> summary key
    "output_tok_s": "output_throughput_tok_s",
    "request_rps": "request_throughput_rps",
    "ttft_p50_ms": "ttft_ms_median",
    "ttft_p99_ms": "ttft_ms_p99",
    "tpot_p50_ms": "tpot_ms_median",
    "tpot_p99_ms": "tpot_ms_p99",
    "itl_p99_ms": "itl_ms_p99",
    "goodput_rps": "goodput_rps",
    "slo_attainment": "slo_attainment",
}


@dataclass(frozen=True)
class SweepPoint:
    series: str  # "" when the sweep has no series
    values: dict  # dotted key -> value, series overrides and grid values together
    grid_values: dict  # the grid part only (table columns)

    @property
    def label(self) -> str:
        parts = ([self.series] if self.series else []) + [
            f"{k.split('.')[-1]}={v}" for k, v in self.grid_values.items()
        ]
        return "__".join(parts).replace("/", "_")


@dataclass(frozen=True)
class PointOutcome:
    """What a point sends back from wherever it ran: its table row, its cold-start rows and its
    summary.json document (None when the point could not run; `error` says why)."""

    row: dict
    startup: list[dict]
    summary_document: dict | None
    error: str | None

    @property
    def summary(self) -> dict | None:
        return None if self.summary_document is None else self.summary_document["summary"]


@dataclass
class SweepResult:
    name: str
    points: list[SweepPoint]
    outcomes: list[PointOutcome]
    table: pd.DataFrame
    startup: pd.DataFrame
    grid_keys: list[str] = field(default_factory=list)


def expand(spec: SweepSpec) -> list[SweepPoint]:
    series = spec.series or {"": {}}
    keys = list(spec.grid)
    combos = list(itertools.product(*(spec.grid[k] for k in keys))) or [()]
    points = []
    for name, overrides in series.items():
        for combo in combos:
            grid = dict(zip(keys, combo, strict=True))
            points.append(SweepPoint(name, {**overrides, **grid}, grid))
    return points


def _row(point: SweepPoint, result: SimulationResult | None, error: str | None) -> dict:
    row = {"series": point.series, **point.grid_values}
    if result is None:
        return row | {"error": error}
    r = result.resolved
    row |= {
        "hardware": r.hardware.name,
        "tp": r.tp,
        "replicas": r.scenario.fleet.replicas,
        "runtime": result.runtime.name if result.runtime else "constant",
        "step_times": r.step_times,
    }
    row |= {col: result.summary[key] for col, key in METRICS.items()}
    stats = result.replica_stats
    tokens = sum(s.num_tokens for s in stats)
    padding = int(sum(s.totals["padding_tokens"] for s in stats))
    row["padding_frac"] = padding / (tokens + padding) if tokens + padding else 0.0
    row["compile_stall_s"] = sum(s.totals["compile_stall_s"] for s in stats)
    return row | {"error": ""}


def _startup_rows(point: SweepPoint, result: SimulationResult) -> list[dict]:
    return [
        {
            "series": point.series,
            "runtime": b.runtime,
            "cache": cache,
            **{f"{k}_s": v for k, v in b.components.items()},
            "time_to_ready_s": b.total_s,
            "first_request_s": b.first_request_s,
        }
        for cache, b in result.startup.items()
    ]


@dataclass(frozen=True)
class PointJob:
    point: SweepPoint
    scenario: dict  # the point's raw scenario (validated where it runs)
    base_dir: Path
    seed: int | None


def run_point(job: PointJob) -> PointOutcome:
    """One sweep point, start to outcome (module-level so worker processes and Ray tasks can import it)."""
    from sim.document import summary_document

    try:
        result = run_simulation(
            resolve(load_scenario_dict(job.scenario, base_dir=job.base_dir)), seed=job.seed
        )
    except InputError as err:
        return PointOutcome(_row(job.point, None, str(err)), [], None, str(err))
    return PointOutcome(
        _row(job.point, result, None),
        _startup_rows(job.point, result),
        summary_document(result, per_request=False),
        None,
    )


def run_sweep(
    path: str | Path,
    overrides=(),
    seed: int | None = None,
    progress: Progress | None = None,
    executor=None,
) -> SweepResult:
    """executor: where the points run (sim/executor.py); default one after another in this process."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), overrides)
    base = load_scenario_dict(raw, base_dir=path.parent)  # validates the base and the sweep block
    if base.sweep is None:
        raise InputError("this scenario has no sweep block", "sweep")
    points = expand(base.sweep)
    base_raw = copy.deepcopy(raw)
    base_raw.pop("sweep")
    jobs = []
    for point in points:
        data = copy.deepcopy(base_raw)
        for key, value in point.values.items():
            set_path(data, key.split("."), value, source="sweep")
        jobs.append(PointJob(point, data, path.parent, seed))
    executor = executor or LocalExecutor(1)
    outcomes = executor.map(run_point, jobs, labels=[p.label for p in points], progress=progress)
    startup, seen = [], set()
    for point, outcome in zip(points, outcomes, strict=True):
        if outcome.startup and point.series not in seen:  # one cold-start table per series
            seen.add(point.series)
            startup += outcome.startup
    return SweepResult(
        base.name,
        points,
        outcomes,
        pd.DataFrame([o.row for o in outcomes]),
        pd.DataFrame(startup),
        list(base.sweep.grid),
    )
