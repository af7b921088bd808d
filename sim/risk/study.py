"""Many runs of one scenario: its variants (named overrides) x Monte Carlo seeds, run in parallel
processes, reduced to per-run digests, then to distributions with confidence intervals and a failover risk.

Seeds: run i of a study uses seed base + i, so run 0 is the ordinary single run and the whole study is
reproducible from the base seed (the runs' streams are independent: each seed draws its own arrivals,
lengths and faults). Results never depend on the number of worker processes.
"""

from __future__ import annotations

import copy
import math
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim.errors import InputError
from sim.executor import LocalExecutor, Progress
from sim.loader import apply_overrides, load_scenario_dict, read_yaml, set_path
from sim.resolve import resolve
from sim.risk.digest import RunDigest, digest
from sim.risk.stats import mean_interval, wilson_interval
from sim.run import SimulationResult, run_simulation
from sim.scenario import Scenario

RunWriter = Callable[[SimulationResult, Path], object]  # writes one run's result files into a folder


@dataclass(frozen=True)
class StudyJob:
    label: str
    run: int
    seed: int
    scenario: Scenario
    write_dir: Path | None = None  # write the run's ordinary result files here (single-run variants)
    write_run: RunWriter | None = None  # how (picklable: a module-level function or a partial of one)


def execute(job: StudyJob) -> RunDigest:
    """One run, start to digest (module-level so worker processes can import it). A run whose files are
    wanted is written where it ran, so the whole result never travels back between processes."""
    result = run_simulation(resolve(job.scenario), seed=job.seed)
    if job.write_dir is not None and job.write_run is not None:
        job.write_run(result, job.write_dir)
    out = digest(result, job.label, job.run)
    out.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # a worker's, when in one
    return out


def expand_variants(path: Path, overrides=()) -> tuple[Scenario, list[tuple[str, Scenario]]]:
    """The base scenario and one (name, scenario) per variant -- just ("", base) without variants. Each
    variant is validated and resolved here, so a bad one stops the study before any run starts."""
    raw = apply_overrides(read_yaml(path), overrides)
    base = load_scenario_dict(raw, base_dir=path.parent)
    if not base.variants:
        resolve(base)
        return base, [("", base)]
    out = []
    for name, changes in base.variants.items():
        data = copy.deepcopy(raw)
        data.pop("variants")
        for key, value in changes.items():
            set_path(data, key.split("."), value, source=f"variants.{name}")
        try:
            scenario = load_scenario_dict(data, base_dir=path.parent)
            resolve(scenario)
        except InputError as err:
            raise InputError(f"variant '{name}': {err}", "variants") from None
        out.append((name, scenario))
    return base, out


@dataclass
class Study:
    name: str
    base: Scenario
    labels: list[str]
    runs: int
    confidence: float
    digests: list[RunDigest]  # ordered by (label, run)

    def of(self, label: str) -> list[RunDigest]:
        return [d for d in self.digests if d.label == label]

    def runs_table(self) -> pd.DataFrame:
        rows = [
            {
                "variant": d.label,
                "run": d.run,
                "seed": d.seed,
                **d.metrics,
                "breached": d.breached,
                "breach_reason": d.breach_reason,
            }
            for d in self.digests
        ]
        return pd.DataFrame(rows)

    def aggregate(self) -> pd.DataFrame:
        """Per variant and metric: mean with its confidence interval, and the 5/50/95th percentiles."""
        rows = []
        for label in self.labels:
            ds = self.of(label)
            for metric in ds[0].metrics:
                values = np.array([d.metrics[metric] for d in ds], dtype=float)
                mean, low, high = mean_interval(values, self.confidence, metric_range(metric))
                finite = values[np.isfinite(values)]
                p5, p50, p95 = np.percentile(finite, [5, 50, 95]) if len(finite) else (np.nan,) * 3
                rows.append(
                    {
                        "variant": label,
                        "metric": metric,
                        "mean": mean,
                        "ci_low": low,
                        "ci_high": high,
                        "p5": p5,
                        "p50": p50,
                        "p95": p95,
                    }
                )
        return pd.DataFrame(rows)

    def risk(self) -> pd.DataFrame:
        """Failover risk per variant: P(a run breaches the objective), Wilson interval."""
        rows = []
        for label in self.labels:
            ds = self.of(label)
            breaches = sum(d.breached for d in ds)
            p, low, high = wilson_interval(breaches, len(ds), self.confidence)
            rows.append(
                {
                    "variant": label,
                    "runs": len(ds),
                    "breaches": breaches,
                    "risk": p,
                    "ci_low": low,
                    "ci_high": high,
                    "time_to_ready_s": ds[0].time_to_ready_s,
                }
            )
        return pd.DataFrame(rows)


def run_study(
    path: Path,
    overrides=(),
    *,
    seed: int | None = None,
    runs: int | None = None,
    jobs: int | None = None,
    out_dir: Path | None = None,
    write_run: RunWriter | None = None,
    progress: Progress | None = None,
    executor=None,
) -> Study:
    """executor: where the runs execute (sim/executor.py); default local processes, `jobs` of them.
    write_run: with out_dir, writes each variant's result files into out_dir/<variant> when the study has
    one run per variant (the report layer passes its writer; this runner writes nothing itself)."""
    base, variants = expand_variants(path, overrides)
    mc = base.monte_carlo
    runs = runs or mc.runs
    base_seed = base.seed if seed is None else seed
    jobs_list = []
    for label, scenario in variants:
        for i in range(runs):
            write_dir = out_dir / label if (out_dir is not None and runs == 1 and label) else None
            jobs_list.append(StudyJob(label, i, base_seed + i, scenario, write_dir, write_run))
    if executor is None:
        executor = LocalExecutor(jobs or mc.jobs)
    labels = [f"{job.label or base.name} run {job.run}" for job in jobs_list]
    digests = executor.map(execute, jobs_list, labels=labels, progress=progress)
    return Study(base.name, base, [label for label, _ in variants], runs, mc.confidence, digests)


FRACTIONS = ("slo_attainment_all", "spike_attainment", "prefix_cache_hit_rate")


def metric_range(metric: str) -> tuple[float, float]:
    """The values a run digest's metric can take: fractions lie in [0, 1]; every other headline metric (rates,
    counts, times, hours, dollars) is non-negative."""
    return (0.0, 1.0) if metric in FRACTIONS else (0.0, math.inf)
