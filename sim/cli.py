"""`simulate SCENARIO.yaml`: run a scenario and write its results.

Thin on purpose: options are parsed here, everything else is delegated. Bad input of any kind ends with one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sim.cli_support import OneLineCommand, counting, executor_for, fail
from sim.errors import InputError


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("scenario", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Results folder (default: results/<scenario name>/).",
)
@click.option("--seed", type=int, help="Override the scenario's seed.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a scenario field, e.g. --set fleet.replicas=4 (repeatable; value read as YAML).",
)
@click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout instead of the table.")
@click.option(
    "--per-request", is_flag=True, help="Include every request (with its ITL list) in summary.json."
)
@click.option("--no-plot", is_flag=True, help="Skip the time-series PNG.")
@click.option(
    "--tables",
    "table_format",
    type=click.Choice(["csv", "parquet"]),
    default="csv",
    show_default=True,
    help="Format of requests and timeseries tables (parquet: columnar, needs servesim[parquet]).",
)
@click.option("--no-requests", is_flag=True, help="Skip the per-request table (one row per request).")
@click.option("--report", is_flag=True, help="Also write report.html: one self-contained page (offline).")
@click.option("--schema", is_flag=True, help="Print the scenario JSON Schema and exit.")
@click.option(
    "--runs",
    type=int,
    help="Independent Monte Carlo runs (seeds base..base+N-1); overrides monte_carlo.runs.",
)
@click.option("--jobs", type=int, help="Parallel workers for many runs (default: CPU count).")
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where many runs execute: local processes or Ray (needs servesim[ray]).",
)
@click.option("--address", help="Ray cluster to join (e.g. auto, ray://head:10001); default: start one here.")
def main(
    scenario,
    out_dir,
    seed,
    overrides,
    as_json,
    per_request,
    no_plot,
    table_format,
    no_requests,
    report,
    schema,
    runs,
    jobs,
    executor,
    address,
):
    """Simulate the vLLM fleet described by SCENARIO (a YAML file) and report goodput and latencies."""
    if schema:
        from sim.scenario import Scenario

        click.echo(json.dumps(Scenario.model_json_schema(by_alias=True), indent=2))
        return
    if scenario is None:
        fail("missing SCENARIO (a YAML file); see `simulate --help`")
    if seed is not None and seed < 0:
        fail("--seed: must be >= 0")
    if runs is not None and runs < 1:
        fail("--runs: must be >= 1")
    if jobs is not None and jobs < 1:
        fail("--jobs: must be >= 1")
    from sim.report.files import require_table_format

    try:
        require_table_format(table_format)
    except ImportError as err:
        fail(f"--tables: {err}")
    try:
        from sim.loader import load_scenario
        from sim.resolve import resolve

        sc = load_scenario(scenario, overrides)
        if sc.sweep is not None:
            if runs is not None and runs > 1:
                fail("--runs: a sweep runs one seed per point; use variants for Monte Carlo comparisons")
            with executor_for(executor, jobs, address) as ex:
                _sweep(scenario, sc, overrides, seed, out_dir, as_json, no_plot, ex, report)
            return
        if sc.variants or (runs or sc.monte_carlo.runs) > 1:
            tables = {"table_format": table_format, "requests_table": not no_requests}
            with executor_for(executor, jobs or sc.monte_carlo.jobs, address) as ex:
                _study(scenario, sc, overrides, seed, runs, out_dir, as_json, no_plot, tables, ex, report)
            return
        resolved = resolve(sc)
        result = _run(resolved, seed, show_progress=not as_json)
    except InputError as err:
        fail(str(err))

    from sim.document import summary_document
    from sim.report.files import write_results

    target = out_dir or Path("results") / sc.name
    try:
        written = write_results(
            result,
            target,
            per_request=per_request or sc.metrics.per_request,
            plot=report or not no_plot,
            table_format=table_format,
            requests_table=not no_requests,
        )
        if report:
            from sim.report.pages import run_page

            written.append(run_page(result, written, target))
    except OSError as exc:
        fail(f"--out: cannot write results to {target}: {exc.strerror or exc}")
    if as_json:
        click.echo(json.dumps(summary_document(result, per_request=False), indent=2))
        return
    from sim.report.console import print_summary

    print_summary(result, Console(), written)


def _sweep(path, sc, overrides, seed, out_dir, as_json, no_plot, executor, report):
    from sim.report.sweep import write_sweep
    from sim.sweep import run_sweep

    sweep = counting(
        "sweep",
        "points",
        sc.name,
        as_json,
        lambda progress: run_sweep(path, overrides, seed, progress=progress, executor=executor),
    )
    target = out_dir or Path("results") / sc.name
    try:
        written = write_sweep(sweep, target, plot=report or not no_plot)
        if report:
            from sim.report.pages import sweep_page

            written.append(sweep_page(sweep, written, target))
    except OSError as exc:
        fail(f"--out: cannot write results to {target}: {exc.strerror or exc}")
    if as_json:
        click.echo(sweep.table.to_json(orient="records", indent=2))
        return
    from sim.report.console import print_sweep

    print_sweep(sweep, Console(), written)


def _study(path, sc, overrides, seed, runs, out_dir, as_json, no_plot, tables, executor, report):
    from functools import partial

    from sim.report.files import write_results
    from sim.report.study import side_by_side, write_study
    from sim.risk.study import run_study

    target = out_dir or Path("results") / sc.name
    writable(target)  # runs write their files as they end: an unwritable --out must stop the study first
    write_run = partial(write_results, per_request=False, plot=not no_plot, **tables)
    kwargs = dict(seed=seed, runs=runs, out_dir=target, write_run=write_run, executor=executor)
    study = counting(
        "runs", "", sc.name, as_json, lambda progress: run_study(path, overrides, progress=progress, **kwargs)
    )
    try:
        written = write_study(study, target, plot=report or not no_plot)
        if report:
            from sim.report.pages import study_page

            written.append(study_page(study, written, target))
    except OSError as exc:
        fail(f"--out: cannot write results to {target}: {exc.strerror or exc}")
    if as_json:
        click.echo(side_by_side(study).to_json(orient="records", indent=2))
        return
    from sim.report.console import print_study

    print_study(study, Console(), written)


def _run(resolved, seed, *, show_progress: bool):
    from sim.run import run_simulation

    console = Console(stderr=True)
    if not show_progress or not console.is_terminal:
        return run_simulation(resolved, seed=seed)
    with Progress(
        TextColumn("[bold]simulating[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.fields[now]:.0f} s simulated"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(resolved.scenario.name, total=1.0, now=0.0)

        def update(now: float, horizon: float) -> None:
            bar.update(task, completed=min(1.0, now / horizon) if horizon else 1.0, now=now)

        return run_simulation(resolved, seed=seed, progress=update)


if __name__ == "__main__":
    main()


def writable(target: Path) -> None:
    """Create the results folder now, or stop with one line (exit 2) if it cannot be."""
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--out: cannot write results to {target}: {exc.strerror or exc}")
    if not target.is_dir():
        fail(f"--out: {target} is a file, not a folder")
