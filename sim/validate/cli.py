"""`validate run SCENARIO --endpoint URL`: replay the scenario's workload against a live server and through
the simulator, and report the difference. `validate bench SCENARIO --endpoint URL`: only the load test.

The workload is drawn once from the scenario (sim/traffic) and used for both sides. Requests go only to the
--endpoint given. Bad input exits 2 with one line; a failed verdict exits 1 with --strict.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import click
from rich.console import Console

from sim.cli_support import OneLineGroup, fail
from sim.errors import InputError
from sim.validate.compare import Tolerances


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Compare servesim's predictions with a live OpenAI-compatible server."""


def _common(f):
    for option in reversed(
        [
            click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path)),
            click.option(
                "--endpoint", required=True, help="Base URL of the live server, e.g. http://127.0.0.1:8000."
            ),
            click.option(
                "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Results folder."
            ),
            click.option(
                "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a scenario field."
            ),
            click.option("--max-concurrency", type=int, default=None, help="Cap on requests in flight."),
            click.option("--warmup", type=int, default=3, show_default=True, help="Serial warm-up requests."),
            click.option(
                "--timeout", "timeout_s", type=float, default=600.0, show_default=True, help="Per request, s."
            ),
            click.option(
                "--max-duration", type=float, default=None, help="Send no request after this many seconds."
            ),
            click.option(
                "--use-chat", is_flag=True, help="Use /v1/chat/completions instead of /v1/completions."
            ),
            click.option(
                "--prompt-seed",
                type=int,
                default=None,
                help="Seed of the prompts' token ids (default: a fresh one per run, recorded in the results, so "
                "no run finds an earlier run's prompts in the server's prefix cache).",
            ),
        ]
    ):
        f = option(f)
    return f


@dataclass(frozen=True)
class ReplayOptions:
    """The options bench and run share (see _common): what to replay, against which server, and how."""

    scenario: Path
    endpoint: str
    out_dir: Path | None
    overrides: tuple[str, ...]
    max_concurrency: int | None
    warmup: int
    timeout_s: float
    max_duration: float | None
    use_chat: bool
    prompt_seed: int | None


def _load_and_replay(opts: ReplayOptions):
    from sim.live.client import check_endpoint
    from sim.live.loadgen import replay
    from sim.loader import load_scenario
    from sim.metrics.summary import summarize
    from sim.resolve import resolve
    from sim.traffic.workload import build_workload
    from sim.validate.measured import measured_table

    endpoint, max_concurrency, overrides = opts.endpoint, opts.max_concurrency, opts.overrides
    check_endpoint(endpoint)
    if max_concurrency is not None:  # the prediction's clients are capped as the load generator's are
        overrides = (*overrides, f"workload.max_concurrency={max_concurrency}")
    sc = load_scenario(opts.scenario, overrides)
    resolved = resolve(sc)
    workload = build_workload(resolved.workload, resolved.seed)
    out_dir = opts.out_dir or Path("results") / f"validate-{sc.name}"
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    records_path = out_dir / "measured_requests.jsonl"
    records_path.unlink(missing_ok=True)
    try:
        load = replay(
            endpoint,
            workload,
            vocab_size=resolved.model.vocab_size,
            max_concurrency=max_concurrency,
            warmup=opts.warmup,
            timeout_s=opts.timeout_s,
            max_duration_s=opts.max_duration,
            records_path=records_path,
            use_chat=opts.use_chat,
            prompt_seed=secrets.randbelow(2**31) if opts.prompt_seed is None else opts.prompt_seed,
        )
    except (OSError, InputError) as exc:
        if created:  # nothing was measured: leave no empty results folder behind
            shutil.rmtree(out_dir, ignore_errors=True)
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot reach {endpoint}: {exc}", "--endpoint") from None
    table, itl, counts = measured_table(load)
    summary = summarize(table, itl, counts, resolved.slo, duration_s=load.duration_s)
    warm = load.warmup_ttft_s
    measured_doc = {
        "metadata": {
            "base_url": endpoint,
            "model": resolved.model.name,
            "backend_label": "live",
            "num_prompts": len(load.records),
            "seed": sc.seed,
            "warmup": len(warm),
            "warmup_ttft_s": warm,
            "cold_start_ttft_s": warm[0] if warm else None,
            "warm_ttft_s": warm[-1] if len(warm) >= 2 else None,
            "max_concurrency": max_concurrency,
            "prompt_seed": load.prompt_seed,
            "failure_reasons": dict(Counter(r.error for r in load.records if not r.success)),
            "prefix_cache_tokens": (
                {"hits": load.prefix_cache[0], "queries": load.prefix_cache[1]} if load.prefix_cache else None
            ),
        },
        "summary": summary,
    }
    return sc, resolved, workload, load, table, summary, measured_doc, out_dir


@main.command()
@_common
def bench(**common):
    """Load-test ENDPOINT with SCENARIO's workload; write the harness's summary.json and every request."""
    try:
        *_, measured_doc, out = _load_and_replay(ReplayOptions(**common))
    except InputError as err:
        fail(str(err))
    (out / "summary.json").write_text(json.dumps(measured_doc, indent=2, default=float) + "\n")
    s = measured_doc["summary"]
    Console().print(
        f"measured: {s['completed']} ok, {s['failures']} failed in {s['duration_s']:.1f} s; TTFT p50 "
        f"{s['ttft_ms_median']:.1f} ms, TPOT p50 {s['tpot_ms_median']:.2f} ms; goodput "
        f"{s['goodput_rps']:.2f} req/s -> {out}"
    )


@main.command()
@_common
@click.option("--profile", type=click.Path(dir_okay=False), help="Calibration profile for the prediction.")
@click.option("--p50-tolerance", type=float, default=0.10, show_default=True)
@click.option("--p99-tolerance", type=float, default=0.20, show_default=True)
@click.option("--goodput-tolerance", type=float, default=0.10, show_default=True)
@click.option("--strict", is_flag=True, help="Exit 1 when the verdict fails.")
def run(profile, p50_tolerance, p99_tolerance, goodput_tolerance, strict, **common):
    """Replay SCENARIO against ENDPOINT and through the simulator; report predicted vs measured."""
    from sim.document import summary_document
    from sim.run import run_simulation
    from sim.validate.compare import Tolerances, compare
    from sim.validate.report import plot_validation, write_validation

    opts = ReplayOptions(**common)
    if profile:
        opts = replace(opts, overrides=(*opts.overrides, f"profile={Path(profile).resolve()}"))
    endpoint = opts.endpoint
    try:
        sc, resolved, workload, load, measured, m_summary, measured_doc, out = _load_and_replay(opts)
        sent = len(load.records)
        if sent < workload.num_requests:  # --max-duration cut the replay: simulate what was sent
            from sim.traffic.workload import Workload

            workload = Workload(
                workload.arrival_s[:sent],
                workload.prompt_tokens[:sent],
                workload.output_tokens[:sent],
                workload.note,
            )
        predicted = run_simulation(resolved, workload=workload)
    except InputError as err:
        fail(str(err))
    tol = Tolerances(p50_tolerance, p99_tolerance, goodput_tolerance)
    comparison, verdict = compare(predicted.summary, m_summary, tol)
    context = {
        "scenario": sc.name,
        "endpoint": endpoint,
        "requests": sent,
        "predicted_by": f"servesim ({predicted.cost_model_name} step costs"
        + (f", profile {resolved.scenario.profile})" if resolved.scenario.profile else ")"),
        "measured_by": "the harness-exact streaming client (sim/live/client.py) against the live server",
        "failure_reasons": measured_doc["metadata"]["failure_reasons"],
        "prefix_cache": _prefix_cache_line(load.prefix_cache, load.prompt_seed),
    }
    paths = write_validation(
        out,
        comparison=comparison,
        verdict=verdict,
        predicted_doc=summary_document(predicted, per_request=False),
        measured_doc=measured_doc,
        context=context,
    )
    paths.append(
        plot_validation(
            predicted.table, measured, out / "validation.png", f"{sc.name}: predicted vs measured"
        )
    )
    console = Console()
    console.print((out / "validation.md").read_text())
    console.print(f"results: {', '.join(str(p) for p in paths)}")
    if strict and not verdict["passed"]:
        sys.exit(1)


def _replay_item(item):
    from sim.validate.replay import replay_one

    run, folder, overrides, tol = item
    return replay_one(run, folder, overrides, tol)


@main.command()
@click.argument("record", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Results folder.")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a field of every replay."
)
@click.option("--only", default=None, help="Replay only the runs whose name or group contains this text.")
@click.option("--p50-tolerance", type=float, default=0.10, show_default=True)
@click.option("--p99-tolerance", type=float, default=0.20, show_default=True)
@click.option("--goodput-tolerance", type=float, default=0.10, show_default=True)
@click.option("--jobs", type=int, default=None, help="Worker processes (default: one per CPU).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def replay(record, out_dir, overrides, only, p50_tolerance, p99_tolerance, goodput_tolerance, jobs, quiet):
    """Replay RECORD's measured vLLM runs through the simulator; report predicted vs measured.

    RECORD: an LLMServingSim 2.0 bundle folder (meta.json + requests.jsonl), a folder of them, or
    'silicon-sample' (the vLLM rows of the installed aiconfigurator-core's silicon_sample.csv, replayed as
    closed loops). Each run's scenario is written under --out so `simulate` reproduces it.
    """
    from sim.cli_support import counting, executor_for
    from sim.validate.recorded import read_records
    from sim.validate.replay import mape, write_outcome
    from sim.validate.report import write_replay_summary

    tol = Tolerances(p50_tolerance, p99_tolerance, goodput_tolerance)
    try:
        runs = read_records(record)
    except InputError as err:
        fail(str(err))
    if only:
        runs = [r for r in runs if only in r.name or only in r.group]
        if not runs:
            fail(f"--only: no run of {record} matches '{only}'")
    out = out_dir or Path("results") / f"replay-{Path(str(record)).name}"
    items = [(run, out / run.name, tuple(overrides), tol) for run in runs]
    with executor_for("local", jobs, None) as executor:
        outcomes = counting(
            "replaying",
            "runs",
            str(record),
            quiet,
            lambda progress: executor.map(
                _replay_item, items, labels=[r.name for r in runs], progress=progress
            ),
        )
    for outcome in outcomes:
        write_outcome(outcome, out / outcome.run.name)
    paths = write_replay_summary(out, outcomes, mape(outcomes), mape(outcomes, by_group=True))
    console = Console()
    console.print((out / "replay.md").read_text(), markup=False)
    console.print(f"results: {', '.join(str(p) for p in paths)}")


@main.command()
@click.option(
    "--launch-cmd", required=True, help="Shell command that starts the server (run in its own session)."
)
@click.option("--endpoint", required=True, help="Base URL the launched server will answer on.")
@click.option(
    "--cache",
    type=click.Choice(["cold", "warm"]),
    required=True,
    help="The compile cache state this launch starts from (clear it first for 'cold').",
)
@click.option(
    "--shapes",
    default="128:128,1024:128,1024:1024,4096:256",
    show_default=True,
    help="IN_CHARS:OUT_TOKENS probes after the server is ready.",
)
@click.option("--ready-timeout", type=float, default=2400.0, show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), help="Result JSON file.")
@click.option(
    "--profile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Add this measurement to a calibration profile (its startup section).",
)
def startup(launch_cmd, endpoint, cache, shapes, ready_timeout, out_file, profile):
    """Launch a server, time it to healthy, and time cold vs warm first requests per shape."""
    from sim.live.environment import provenance
    from sim.live.startup_probe import measure_startup, parse_shapes
    from sim.profile import StartupMeasurement, load_profile, save_profile

    try:
        parsed = parse_shapes(shapes)
    except ValueError as exc:
        fail(f"--shapes: {exc}")
    try:
        existing = load_profile(profile, "--profile") if profile else None
        result = measure_startup(launch_cmd, endpoint, shapes=parsed, ready_timeout_s=ready_timeout)
    except InputError as err:
        fail(str(err))
    out_file = out_file or Path("results") / f"startup_{cache}.json"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(result, indent=2) + "\n")
    console = Console()
    if not result["became_ready"]:
        console.print(f"[red]the server did not become ready within {result['time_to_ready_s']:.0f} s[/red]")
        sys.exit(1)
    overheads = [s["compile_overhead_s"] for s in result["shapes"] if s["compile_overhead_s"] is not None]
    console.print(
        f"time to ready ({cache} cache, measured): {result['time_to_ready_s']:.1f} s; largest first-request "
        f"compile overhead {max(overheads, default=0.0):.2f} s -> {out_file}"
    )
    if existing is not None:
        measurement = StartupMeasurement(
            provenance=provenance("measured", "validate-startup", f"server at {endpoint}"),
            launch_cmd=launch_cmd,
            cache=cache,
            time_to_ready_s=result["time_to_ready_s"],
            max_compile_overhead_s=max(overheads, default=0.0),
            shapes=result["shapes"],
        )
        existing.startup = [m for m in existing.startup if m.cache != cache] + [measurement]
        save_profile(existing, profile)
        console.print(f"added to {profile} (startup, {cache})")


def _prefix_cache_line(counters: tuple[float, float] | None, seed: int) -> str:
    """What the server's prefix cache did during the run (its /metrics counters), for the report."""
    if counters is None:
        return f"Prompts drawn with seed {seed}; the server exports no prefix-cache counters."
    hits, queries = counters
    rate = hits / queries if queries else 0.0
    return (
        f"Prompts drawn with seed {seed}; the server's prefix cache found {hits:.0f} of {queries:.0f} prompt "
        f"tokens ({rate:.1%}) during the run"
        + (" -- the prediction assumes none: compare with care." if rate > 0.01 else ".")
    )


if __name__ == "__main__":
    main()
