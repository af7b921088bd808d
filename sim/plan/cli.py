"""`plan SCENARIO.yaml --target-rate R`: the configurations of the scenario's plan.space that sustain R with
the SLO attainment, ranked by cost, with the most robust one and the Pareto front of cost vs goodput.

Bad input of any kind ends with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from sim.cli_support import OneLineCommand, counting, executor_for, fail
from sim.errors import InputError


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target-rate", type=float, required=True, help="Base request rate to sustain, requests/s.")
@click.option(
    "--attainment",
    type=float,
    default=0.9,
    show_default=True,
    help="Share of requests that must meet both TTFT and TPOT SLOs.",
)
@click.option("--budget", type=float, help="Most $/hour to spend; dearer candidates are listed, not chosen.")
@click.option(
    "--prices",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Price table (YAML, the layout of sim/catalog/prices.yaml); default the shipped one.",
)
@click.option(
    "--pricing",
    type=click.Choice(["on_demand", "committed"]),
    help="Price column (default: the scenario's plan.pricing).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a scenario field before planning (repeatable).",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Results folder.")
@click.option("--jobs", type=int, help="Parallel workers (default: CPU count).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", help="Ray cluster to join; default: start one here.")
@click.option("--report", is_flag=True, help="Also write report.html (self-contained, offline).")
@click.option("--no-plot", is_flag=True, help="Skip the Pareto plot.")
def main(
    scenario,
    target_rate,
    attainment,
    budget,
    prices,
    pricing,
    overrides,
    out_dir,
    jobs,
    executor,
    address,
    report,
    no_plot,
):
    """Find the configurations of SCENARIO's plan.space that sustain --target-rate, and what they cost."""
    if target_rate <= 0:
        fail("--target-rate: must be > 0")
    if not 0 < attainment <= 1:
        fail("--attainment: must be in (0, 1]")
    if budget is not None and budget <= 0:
        fail("--budget: must be > 0")
    if jobs is not None and jobs < 1:
        fail("--jobs: must be >= 1")
    from sim.loader import apply_overrides, read_yaml
    from sim.plan.prices import load_prices
    from sim.plan.search import run_plan
    from sim.report.plan import print_plan, write_plan

    try:
        raw = apply_overrides(read_yaml(scenario), overrides)
        table = load_prices(prices)
        with executor_for(executor, jobs, address) as ex:
            result = counting(
                "plan",
                "",
                scenario.stem,
                False,
                lambda progress: run_plan(
                    raw,
                    scenario.parent,
                    target_rps=target_rate,
                    attainment=attainment,
                    prices=table,
                    pricing=pricing,
                    budget_usd_per_hour=budget,
                    executor=ex,
                    progress=progress,
                ),
            )
    except InputError as err:
        fail(str(err))
    target = out_dir or Path("results") / f"plan_{result.name}"
    try:
        written = write_plan(result, target, plot=not no_plot, report=report)
    except OSError as exc:
        fail(f"--out: cannot write results to {target}: {exc.strerror or exc}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # a piped table keeps its columns whole
    print_plan(result, console, written)


if __name__ == "__main__":
    main()
