"""The console view of a run: one table of headline metrics and where the numbers came from."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sim.run import SimulationResult


def print_summary(result: SimulationResult, console: Console, written: list | None = None) -> None:
    s = result.summary
    r = result.resolved
    table = Table(
        title=f"{r.name}: {r.model.name} on {r.hardware.name}, {r.fleet.replicas} replica(s) x TP{r.tp}",
        caption=f"simulated; step times: {r.step_times} ({result.cost_model_name}; sources below)",
    )
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p90", justify="right")
    table.add_column("p99", justify="right")
    table.add_column("max", justify="right")
    for label, key in (
        ("TTFT (ms)", "ttft_ms"),
        ("TPOT (ms)", "tpot_ms"),
        ("ITL (ms)", "itl_ms"),
        ("E2E (ms)", "e2e_ms"),
    ):
        table.add_row(label, *(f"{s[f'{key}_{k}']:.1f}" for k in ("mean", "median", "p90", "p99", "max")))
    console.print(table)
    console.print(
        f"requests: {s['completed']} completed, {s['failures']} failed of {s['total_requested']} "
        f"over {s['duration_s']:.1f} s simulated | {s['request_throughput_rps']:.2f} req/s, "
        f"{s['output_throughput_tok_s']:.0f} output tok/s"
    )
    console.print(
        f"goodput: [bold]{s['goodput_rps']:.2f} req/s[/bold], SLO attainment {s['slo_attainment']:.1%} "
        f"(SLO '{r.slo.name}': TTFT <= {r.slo.ttft_ms:g} ms and TPOT <= {r.slo.tpot_ms:g} ms)"
    )
    preemptions = int(result.table["num_preemptions"].sum())
    console.print(
        f"engine: {result.num_steps} steps, {preemptions} preemptions, KV {r.memory.num_blocks} blocks x "
        f"{r.memory.block_size} tokens per replica ({r.memory.blocks_source})"
    )
    from sim.document import runtime_block

    rt = runtime_block(result)
    if rt is not None:
        cold, warm = result.startup["cold"], result.startup["warm"]
        console.print(
            f"runtime: {rt['name']} | padding {rt['padding_frac']:.1%} of computed tokens | "
            f"{rt['compile_stalls']} compile stalls ({rt['compile_stall_s']:.1f} s) | time to ready "
            f"{cold.total_s:.0f} s cold / {warm.total_s:.0f} s warm cache"
        )
    _print_fleet(result, console)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print("[dim]where the numbers come from:[/dim]")
    console.print(f"[dim]  model: {r.model.source}; hardware: {r.hardware.source}[/dim]")
    console.print(f"[dim]  profile: {r.provenance.get('profile', 'none')}[/dim]")
    for key, value in sorted(r.provenance_of("cost").items()):
        if key not in {"architecture"}:
            console.print(f"[dim]  {key}: {value}[/dim]")
    console.print(f"[dim]  workload: {result.workload.note}[/dim]")
    if written:
        console.print(f"results: {', '.join(str(p) for p in written)}")
    console.print(
        f"[dim]simulated {s['total_requested']} requests in {result.wall_s:.2f} s wall "
        f"({s['total_requested'] / max(result.wall_s, 1e-9):,.0f} req/s)[/dim]"
    )


def print_sweep(sweep, console: Console, written: list | None = None) -> None:
    """The sweep's point table and start-up comparison."""
    table = Table(
        title=f"{sweep.name}: {len(sweep.points)} points",
        caption="simulated; see each point's summary.json for sources",
    )
    cols = [
        "series",
        *sweep.grid_keys,
        "output_tok_s",
        "ttft_p99_ms",
        "tpot_p99_ms",
        "goodput_rps",
        "slo_attainment",
    ]
    for col in cols:
        table.add_column(col.split(".")[-1], justify="left" if col == "series" else "right")
    reasons: dict[str, str] = {}
    for row in sweep.table.to_dict("records"):
        if row.get("error"):
            table.add_row(*[str(row.get(c, "")) for c in ["series", *sweep.grid_keys]], *["-"] * 5)
            reasons.setdefault(str(row["series"]), row["error"])
            continue
        cells = [str(row["series"]), *[str(row[k]) for k in sweep.grid_keys]]
        cells += [
            f"{row['output_tok_s']:.0f}",
            f"{row['ttft_p99_ms']:.0f}",
            f"{row['tpot_p99_ms']:.1f}",
            f"{row['goodput_rps']:.2f}",
            f"{row['slo_attainment']:.1%}",
        ]
        table.add_row(*cells)
    console.print(table)
    if "step_times" in sweep.table:
        sources = sweep.table.dropna(subset=["step_times"]).groupby("series", sort=False)["step_times"]
        console.print(
            "step times: "
            + "; ".join(f"{series or 'all points'} {', '.join(v.unique())}" for series, v in sources)
        )
    for series, reason in reasons.items():
        console.print(f"[red]{series or 'point'} cannot run:[/red] {reason}")
    if not sweep.startup.empty:
        start = Table(title="replica start-up (simulated components; sources in each point's summary.json)")
        for col in ("series", "runtime", "cache", "time_to_ready_s", "first_request_s"):
            start.add_column(col, justify="left" if col in ("series", "runtime", "cache") else "right")
        for row in sweep.startup.to_dict("records"):
            start.add_row(
                str(row["series"]),
                row["runtime"],
                row["cache"],
                f"{row['time_to_ready_s']:.0f}",
                f"{row['first_request_s'] * 1e3:.0f} ms",
            )
        console.print(start)
    if written:
        console.print(f"results: {', '.join(str(p) for p in written)}")


def print_study(study, console: Console, written: list | None = None) -> None:
    """The side-by-side table of a many-run study, with its failover risk."""
    from sim.report.study import side_by_side
    from sim.report.verdict import verdict

    frame = side_by_side(study)
    step_times = dict(zip(frame["variant"], frame.pop("step times"), strict=True))  # a line below the table
    objective = study.base.monte_carlo.objective
    title = f"{study.name}: {study.runs} run(s) per variant"
    caption = (
        f"simulated; mean [{study.confidence:.0%} CI] over runs; failover risk = P(windowed attainment "
        f"< {objective.min_attainment:.0%} for > {objective.max_breach_s:g} s"
        + (
            f" or > {objective.max_failed_requests} failed requests)"
            if objective.max_failed_requests is not None
            else ")"
        )
    )
    # A row per variant needs ~11 characters per metric; below that, each variant's numbers read down a
    # column instead, and every header stays whole at 80 columns.
    if console.width >= 12 * len(frame.columns):
        table = Table(title=title, caption=caption)
        for col in frame.columns:
            table.add_column(col, justify="left" if col == "variant" else "right")
        for row in frame.itertuples(index=False):
            table.add_row(*[str(v) for v in row])
        console.print(table)
    else:
        console.print(f"[bold]{title}[/bold]")
        for row in frame.to_dict("records"):
            console.print(f"[bold]{row.pop('variant')}[/bold]")
            cells = [f"{name} {value}" for name, value in row.items() if name != "runs"]
            for line in _pack(cells, console.width - 2):  # lines break between cells, never inside one
                console.print("  " + line, no_wrap=True, overflow="ignore", markup=False)
        console.print(caption)
    console.print("step times: " + "; ".join(f"{label} {source}" for label, source in step_times.items()))
    breaches = [d for d in study.digests if d.breached]
    for d in breaches[:5]:
        console.print(
            f"[yellow]breach[/yellow] {d.label or study.name} run {d.run} (seed {d.seed}): {d.breach_reason}"
        )
    if len(breaches) > 5:
        console.print(f"... {len(breaches) - 5} more breaching runs in runs.csv")
    if written:
        console.print(f"results: {', '.join(str(p) for p in written)}")
    console.print(f"[bold]Verdict:[/bold] {verdict(study)}")


def _print_fleet(result, console: Console) -> None:
    """Autoscaling, faults and capacity, when the fleet changed during the run."""
    from sim.document import fleet_block

    log = fleet_block(result)
    fleet = result.resolved.fleet
    quiet = fleet.autoscaler is None and fleet.faults is None and len(log["lives"]) == fleet.replicas
    if quiet and "pools" not in log:
        return
    ts = result.timeseries
    counts: dict[str, int] = {}
    for event in log["events"]:
        counts[event["event"]] = counts.get(event["event"], 0) + 1
    happened = ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "no events"
    cost = f", ${log['cost_usd']:.2f} (price: scenario)" if log["cost_usd"] is not None else ""
    console.print(
        f"fleet: {happened} | ready replicas {ts['replicas_ready'].min():.0f}-{ts['replicas_ready'].max():.0f} "
        f"| {log['retries']} retries | {log['replica_hours']:.2f} replica-hours ({log['chip_hours']:.2f} "
        f"chip-hours{cost})"
    )
    for pool in log.get("pools", []):
        ttft, tpot = pool["ttft_ms_median"], pool["tpot_ms_median"]
        console.print(
            f"  pool {pool['pool']} ({pool['hardware']}): {pool['completed']} completed, "
            f"{pool['goodput_rps']:.2f} good req/s, TTFT p50 "
            f"{'-' if ttft is None else f'{ttft:.0f}'} ms, TPOT p50 {'-' if tpot is None else f'{tpot:.1f}'} ms, "
            f"{pool['replicas_started']} replicas, {pool['replica_seconds'] / 3600:.2f} replica-hours"
        )


def _pack(cells: list[str], width: int) -> list[str]:
    """Cells joined by " | " into lines of at most `width` characters (a longer cell gets a line of its own)."""
    lines: list[str] = []
    for cell in cells:
        if lines and len(lines[-1]) + 3 + len(cell) <= width:
            lines[-1] += " | " + cell
        else:
            lines.append(cell)
    return lines
