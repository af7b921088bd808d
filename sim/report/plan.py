"""Result files of `plan`:

plan.csv / plan.md   every candidate, ranked (feasible within budget by $/hour, then the rest with reasons)
pareto.png           $/hour vs fleet capacity, the Pareto front marked, cheapest and most robust labelled
best.yaml            the cheapest feasible candidate as a ready-to-run scenario (robust.yaml: the most
                     robust one, when it differs)
plan.json            the question, the answer and how each number was obtained
report.html          with --report: all of it in one self-contained page
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from sim import __version__  # noqa: E402
from sim.document import json_safe  # noqa: E402
from sim.plan.search import PlanResult  # noqa: E402
from sim.report.figures import save_figure  # noqa: E402
from sim.report.tables import markdown_table  # noqa: E402

SHOWN = [  # plan.md / console columns, in order (plan.csv has every column)
    "candidate",
    "hardware",
    "tp",
    "replica_capacity_rps",
    "replicas",
    "attainment",
    "usd_per_hour",
    "usd_per_1m_good_requests",
    "good_requests_per_usd",
    "failover_risk",
    "step_costs",
    "reason",
]


def plan_document(result: PlanResult) -> dict:
    return json_safe(
        {
            "servesim": __version__,
            "question": {
                "scenario": result.name,
                "target_rps": result.target_rps,
                "attainment": result.attainment,
                "budget_usd_per_hour": result.budget_usd_per_hour,
                "pricing": result.pricing,
            },
            "cheapest": result.cheapest,
            "most_robust": result.robust,
            "pareto_front": result.pareto,
            "warnings": result.warnings,
            "methods": result.methods(),
            "candidates": result.table.to_dict("records"),
        }
    )


def plot_pareto(result: PlanResult, path: Path) -> Path | None:
    table = result.table[result.table["feasible"]]
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    front = table["candidate"].isin(result.pareto)
    ax.scatter(table["usd_per_hour"], table["fleet_capacity_rps"], color="0.6", label="feasible")
    ax.scatter(
        table.loc[front, "usd_per_hour"],
        table.loc[front, "fleet_capacity_rps"],
        color="tab:blue",
        label="Pareto front",
    )
    ordered = table.loc[front].sort_values("usd_per_hour")
    ax.plot(ordered["usd_per_hour"], ordered["fleet_capacity_rps"], color="tab:blue", alpha=0.5)
    for name, marker in ((result.cheapest, "cheapest"), (result.robust, "most robust")):
        if name is None:
            continue
        row = table[table["candidate"] == name].iloc[0]
        ax.annotate(
            f"{marker}: {name}",
            (row["usd_per_hour"], row["fleet_capacity_rps"]),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
        )
    ax.axhline(result.target_rps, color="tab:red", linestyle="--", linewidth=1, label="target rate")
    if result.budget_usd_per_hour is not None:
        ax.axvline(result.budget_usd_per_hour, color="tab:orange", linestyle=":", label="budget")
    ax.set_xlabel(f"$ per hour ({result.pricing} list prices)")
    ax.set_ylabel("fleet capacity at the attainment, req/s")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, f"{result.name}: cost vs goodput capacity (simulated)", path)


def write_plan(result: PlanResult, out_dir: Path, *, plot: bool, report: bool) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    csv = out_dir / "plan.csv"
    result.table.to_csv(csv, index=False, float_format="%.6g")
    md = out_dir / "plan.md"
    shown = result.table[[c for c in SHOWN if c in result.table.columns]]
    md.write_text(
        f"# {result.name}: {result.target_rps:g} req/s at {result.attainment:.0%} SLO attainment "
        f"(simulated by servesim {__version__})\n\n"
        + markdown_table(shown)
        + f"\nCheapest: {result.cheapest or 'none'}. Most robust: {result.robust or 'not assessed'}. "
        f"Pareto front: {', '.join(result.pareto) or 'empty'}.\n\n"
        + "".join(f"Warning: {w}\n\n" for w in result.warnings)
        + "".join(f"- {k}: {v}\n" for k, v in result.methods().items())
    )
    written += [csv, md]
    for name, filename in ((result.cheapest, "best.yaml"), (result.robust, "robust.yaml")):
        if name is None or (filename == "robust.yaml" and name == result.cheapest):
            continue
        path = out_dir / filename
        path.write_text(
            f"# Written by `plan` (servesim {__version__}): candidate {name}, sized for "
            f"{result.target_rps:g} req/s at {result.attainment:.0%} attainment.\n"
            + yaml.safe_dump(result.scenarios[name], sort_keys=False)
        )
        written.append(path)
    doc = out_dir / "plan.json"
    doc.write_text(json.dumps(plan_document(result), indent=2) + "\n")
    written.append(doc)
    figures = []
    if plot and (png := plot_pareto(result, out_dir / "pareto.png")):
        written.append(png)
        figures.append(png)
    if report:
        from sim.report.pages import plan_page

        written.append(plan_page(result, shown, figures, out_dir))
    return written


def _note(row: dict) -> str:
    if not row.get("feasible"):
        return row.get("reason") or ""
    if row["usd_per_hour"] != row["usd_per_hour"]:
        return "no price"
    return "over budget" if not row["within_budget"] else ""


def print_plan(result: PlanResult, console: Console, written: list | None = None) -> None:
    table = Table(
        title=f"{result.name}: {result.target_rps:g} req/s at {result.attainment:.0%} SLO attainment",
        caption=f"simulated; prices: {result.pricing} list prices (sources in plan.csv); {result.risk_note}",
    )
    table.add_column("candidate", no_wrap=True)
    for col in ("replicas", "$/hour", "$/1M good", "risk"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("note", max_width=40, overflow="ellipsis", no_wrap=True)
    for row in result.table.to_dict("records"):
        feasible = row.get("feasible")
        risk = row.get("failover_risk")
        table.add_row(
            row["candidate"],
            str(int(row["replicas"])) if feasible else "-",
            f"{row['usd_per_hour']:,.2f}" if feasible and row["usd_per_hour"] == row["usd_per_hour"] else "-",
            f"{row['usd_per_1m_good_requests']:,.0f}"
            if feasible and row["usd_per_1m_good_requests"] == row["usd_per_1m_good_requests"]
            else "-",
            "-"
            if risk is None or risk != risk
            else f"{risk:.0%} [{row['risk_low']:.0%}, {row['risk_high']:.0%}]",
            _note(row),
        )
    console.print(table)
    steps = result.table.dropna(subset=["step_times"]) if "step_times" in result.table else result.table
    if "step_times" in steps and len(steps):
        by_source = steps.groupby("step_times", sort=False)["candidate"].apply(list)
        console.print(
            "step times: "
            + "; ".join(f"{source} ({len(names)} candidates)" for source, names in by_source.items())
        )
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(f"cheapest: [bold]{result.cheapest or 'none'}[/bold]; most robust: {result.robust or '-'}")
    if written:
        console.print(f"results: {', '.join(str(p) for p in written)}")
