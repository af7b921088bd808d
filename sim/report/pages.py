"""`--report`: the report.html page of `simulate` -- one run, a many-run study or a sweep -- built from what
the command already wrote (figures, tables) plus the scenario and where every input number came from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from sim import __version__
from sim.report.html import Report

HEADLINE = [  # (summary key, label, unit)
    ("goodput_rps", "goodput", "req/s"),
    ("slo_attainment", "SLO attainment (of completed)", "share"),
    ("slo_attainment_all", "SLO attainment (of all sent)", "share"),
    ("request_throughput_rps", "request throughput", "req/s"),
    ("output_throughput_tok_s", "output throughput", "tok/s"),
    ("ttft_ms_median", "TTFT median", "ms"),
    ("ttft_ms_p99", "TTFT p99", "ms"),
    ("tpot_ms_median", "TPOT median", "ms"),
    ("tpot_ms_p99", "TPOT p99", "ms"),
    ("itl_ms_p99", "ITL p99", "ms"),
    ("completed", "completed requests", ""),
    ("failures", "failed requests", ""),
]


def _figures(page: Report, written: list[Path], captions: dict[str, str]) -> None:
    for path in written:
        if path.suffix == ".png":
            page.figure(path, captions.get(path.stem, path.stem.replace("_", " ")))


def _provenance_frame(block: dict) -> pd.DataFrame:
    """summary.json's provenance block (sections of the one provenance map) as one table."""
    rows = []
    for section, entries in block.items():
        if isinstance(entries, dict):
            rows += [{"input": f"{section}: {k}", "source": v} for k, v in entries.items()]
        elif section != "results":
            rows.append({"input": section, "source": entries})
    return pd.DataFrame(rows)


def run_page(result, written: list[Path], out_dir: Path) -> Path:
    """One run: headline metrics, the time series, start-up parts, inputs' provenance, the scenario."""
    from sim.document import servesim_block

    sc = result.resolved.scenario
    block = servesim_block(result)
    page = Report(
        f"simulate: {sc.name}", subtitle=f"servesim {__version__}; {block['provenance']['results']}"
    )
    if sc.description:
        page.text(sc.description)
    page.table(
        "Headline (simulated)",
        pd.DataFrame(
            [
                {"metric": label, "value": result.summary[key], "unit": unit}
                for key, label, unit in HEADLINE
                if key in result.summary
            ]
        ),
    )
    _figures(page, written, {"timeseries": "Requests, latency and replicas over time (simulated)"})
    startup = [
        {"cache": cache, "part": part, "seconds": seconds, "source": parts["provenance"].get(part, "")}
        for cache, parts in block["startup"].items()
        for part, seconds in parts["components_s"].items()
    ]
    if startup:
        page.table("Replica start-up, by part", pd.DataFrame(startup))
    page.table("Where the inputs came from", _provenance_frame(block["provenance"]))
    page.code("Scenario (as resolved)", yaml.safe_dump(block["scenario"], sort_keys=False))
    return page.write(out_dir / "report.html")


def study_page(study, written: list[Path], out_dir: Path) -> Path:
    """Variants x Monte Carlo runs: the side-by-side table, failover risk, the plots, the scenario."""
    from sim.report.study import METHODS, side_by_side

    page = Report(
        f"simulate: {study.name}",
        subtitle=f"servesim {__version__}; {study.runs} simulated run(s) per variant",
    )
    page.table("Variants side by side (mean [confidence interval])", side_by_side(study))
    page.table("Failover risk", study.risk())
    _figures(
        page,
        written,
        {
            "fan_chart": "Windowed SLO attainment over time: median and spread over runs",
            "replicas": "Ready and desired replicas over time",
            "recovery": "Time to recover after a breach, over runs",
        },
    )
    page.table("Methods", pd.DataFrame([{"quantity": k, "method": v} for k, v in METHODS.items()]))
    page.code("Scenario", yaml.safe_dump(study.base.model_dump(mode="json", by_alias=True), sort_keys=False))
    return page.write(out_dir / "report.html")


def sweep_page(sweep, written: list[Path], out_dir: Path) -> Path:
    page = Report(f"simulate: {sweep.name} (sweep)", subtitle=f"servesim {__version__}; simulated points")
    page.table("Points", sweep.table)
    if not sweep.startup.empty:
        page.table("Replica start-up", sweep.startup)
    _figures(page, written, {"sweep": "Metrics across the sweep (simulated)"})
    return page.write(out_dir / "report.html")


def plan_page(result, shown: pd.DataFrame, figures: list[Path], out_dir: Path) -> Path:
    """`plan`: the question, the ranked candidates, the Pareto plot, how each number was obtained, the winner."""
    page = Report(f"plan: {result.name}", subtitle=f"servesim {__version__}; simulated")
    budget = f", budget ${result.budget_usd_per_hour:g}/hour" if result.budget_usd_per_hour else ""
    page.text(
        f"Target {result.target_rps:g} req/s at {result.attainment:.0%} SLO attainment{budget}. "
        f"Cheapest: {result.cheapest or 'none'}; most robust: {result.robust or 'not assessed'}."
    )
    page.table("Candidates, ranked", shown)
    _figures(page, figures, {"pareto": "Cost vs goodput capacity; the Pareto front in blue"})
    page.table(
        "How each number was obtained",
        pd.DataFrame([{"number": k, "how": v} for k, v in result.methods().items()]),
    )
    if result.cheapest is not None:
        page.code("best.yaml (the cheapest, ready to run)", yaml.safe_dump(result.scenarios[result.cheapest]))
    return page.write(out_dir / "report.html")
