"""`calibrate --host HW --model NAME`: measure this host and write a profile for `simulate`.

The measuring methods are the entries of calibrate/methods.py (chosen by --host and what is installed, or
named with --method). Each finished point is saved at once; --resume continues a killed run. Bad input
exits 2 with one line.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from calibrate.methods import METHODS, Context, default_methods
from sim import __version__, catalog
from sim.cli_support import OneLineCommand, fail
from sim.cost.factory import STEP_ORIGINS
from sim.errors import InputError

# A profile whose held-out step error is worse than this prices steps worse than the datasheet roofline
# would be trusted to: it is refused unless the user says otherwise. (Five endpoint calibrations of one busy
# CPU server gave R^2 between -1.24 and 0.98; the shipped CPU profile has 0.64 and p95 24%.)
MIN_HELD_OUT_R2 = 0.5
MAX_HELD_OUT_P95 = 0.5


@click.command(cls=OneLineCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--host", required=True, help="What this host is: 'cpu' or a hardware catalog name (h100, tpu-v6e, ...)."
)
@click.option(
    "--model",
    "model_name",
    default=None,
    help="Model catalog name (e.g. llama-3.1-8b, tiny-llama), or a local model directory or config.json "
    "(its architecture is read from it; nothing is downloaded). Without it, calibrate names what the "
    "shipped scenarios on --host need.",
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(list(METHODS)),
    help="Measure only with these methods (repeatable). Default: by host and what is installed.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Profile file to write (default profiles/<host>-<model>[-tpN][-<dtype>].json).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing profile (e.g. a shipped one).")
@click.option("--quick", is_flag=True, help="A small grid for smoke runs.")
@click.option("--resume", is_flag=True, help="Continue a killed run from its saved points.")
@click.option(
    "--point-timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds one grid point may take before it is skipped.",
)
@click.option(
    "--max-num-batched-tokens",
    type=int,
    default=None,
    help="Largest step to measure (default: vLLM's budget for the host).",
)
@click.option("--tp", type=click.IntRange(1, 64), default=1, show_default=True, help="Tensor-parallel size.")
@click.option(
    "--dtype",
    "weight_dtype",
    type=click.Choice(["bfloat16", "fp8", "nvfp4"]),
    default="bfloat16",
    show_default=True,
    help="Weight precision (kernel-tables).",
)
@click.option(
    "--kv-cache-dtype",
    type=click.Choice(["auto", "fp8"]),
    default="auto",
    show_default=True,
    help="KV-cache precision (kernel-tables).",
)
@click.option(
    "--vllm-version",
    default="0.19.0",
    show_default=True,
    help="vLLM version whose measured kernels to use (kernel-tables; the nearest measured one is taken).",
)
@click.option("--ranks", type=int, default=2, show_default=True, help="Ranks for the collectives sweep.")
@click.option(
    "--endpoint", help="Calibrate from this live OpenAI-compatible server (http://host:port), black-box."
)
@click.option("--max-model-len", type=int, default=None, help="The server's max_model_len (endpoint method).")
@click.option(
    "--accept-poor-fit",
    is_flag=True,
    help=f"Write the profile even when its held-out step fit is poor (R^2 below {MIN_HELD_OUT_R2:g} or p95 "
    f"error above {MAX_HELD_OUT_P95:.0%}).",
)
def main(
    host, model_name, methods, out, force, quick, resume, point_timeout, max_num_batched_tokens, **options
):
    """Measure HOST for MODEL and write a servesim profile."""
    if model_name is None:
        fail(needed_models_message(host))
    try:
        profile, path = run(
            host,
            model_name,
            methods,
            out,
            quick,
            resume,
            point_timeout,
            max_num_batched_tokens,
            force=force,
            **options,
        )
    except InputError as err:
        fail(str(err))
    print_profile(profile, path, Console())


def needed_models_message(host: str) -> str:
    """--model is missing: say which (model, TP) the shipped scenarios run on this host, as commands."""
    import yaml

    base = Path(__file__).resolve().parent.parent / "scenarios"
    needed: set[tuple[str, int]] = set()

    def walk(node, model, tp):
        if isinstance(node, dict):
            model = node.get("model", model) if isinstance(node.get("model", model), str) else model
            fleet = node.get("fleet")
            if isinstance(fleet, dict) and isinstance(fleet.get("tensor_parallel_size"), int):
                tp = fleet["tensor_parallel_size"]
            tp = node.get("fleet.tensor_parallel_size", tp)  # a sweep series' dotted override
            if node.get("hardware") == host and model:
                needed.add((model, tp))
            for value in node.values():
                walk(value, model, tp)
        elif isinstance(node, list):
            for value in node:
                walk(value, model, tp)

    for path in sorted(base.rglob("*.yaml")) if base.is_dir() else []:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            continue
        walk(data, None, 1)
    if not needed:
        return f"--model: required (no shipped scenario runs on {host}); e.g. --model llama-3.1-8b"
    commands = "; ".join(
        f"calibrate --host {host} --model {m}" + (f" --tp {tp}" if tp > 1 else "") for m, tp in sorted(needed)
    )
    return f"--model: required. The shipped scenarios on {host} need: {commands}"


def default_profile_path(host: str, model_name: str, tp: int, weight_dtype: str, kv_cache_dtype: str) -> Path:
    """profiles/<host>-<model>[-tpN][-<dtype>][-kv<dtype>].json: where `profile: auto` looks for it."""
    from sim.shipped_profiles import profile_file_name

    return Path("profiles") / profile_file_name(host, model_name, tp, weight_dtype, kv_cache_dtype)


def lookup_host_and_model(host: str, model_name: str):
    from sim.resolve import lookup_hardware, lookup_model

    arch = lookup_model(model_name)
    if host not in catalog.hardware_entries():
        known = ", ".join(sorted(catalog.hardware_entries()))
        raise InputError(f"unknown host '{host}'; known: {known}", "--host")
    return arch, lookup_hardware(host)


def run(
    host,
    model_name,
    methods,
    out,
    quick,
    resume,
    point_timeout,
    max_num_batched_tokens,
    *,
    force=False,
    tp=1,
    weight_dtype="bfloat16",
    kv_cache_dtype="auto",
    vllm_version="0.19.0",
    ranks=2,
    endpoint=None,
    max_model_len=None,
    accept_poor_fit=False,
):
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from calibrate.store import PointStore
    from sim.profile import Profile, save_profile

    arch, hw = lookup_host_and_model(host, model_name)
    model_name = arch.name  # a local model directory is named by its folder
    if endpoint is not None:
        methods = list(methods) or ["endpoint"]
        if methods != ["endpoint"]:
            raise InputError(
                "--endpoint measures the server only; leave out --method or use --method endpoint", "--method"
            )
    methods = list(methods) or default_methods(host, hw)
    path = out or default_profile_path(host, model_name, tp, weight_dtype, kv_cache_dtype)
    budget = max_num_batched_tokens or (2048 if hw.kind != "gpu" else 8192)
    server_max_model_len = max_model_len
    max_model_len = min(arch.max_position_embeddings, max(budget, 8192))
    options = {
        "endpoint": endpoint,
        "server_max_model_len": server_max_model_len,
        "ranks": ranks,
        "tp": tp,
        "weight_dtype": weight_dtype,
        "kv_cache_dtype": kv_cache_dtype,
        "vllm_version": vllm_version,
    }
    for name in methods:
        METHODS[name].check(host, hw, options)
    if path.exists() and not (force or resume):
        raise InputError(
            f"{path} exists; --force overwrites it, --resume continues the run that wrote it", "--out"
        )
    store = PointStore(path, resume=resume)
    sections: dict = {"model": model_name, "hardware": host, "servesim_version": __version__}
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("calibrating", total=None)

        def on_point(key: str, result: str) -> None:
            progress.update(task, description=f"{key}: {result}")
            method, _, kind = key.rpartition(":")
            if kind == "warning":  # always shown, also on a terminal where the progress line is transient
                console.print(f"  warning ({method}): {result}", markup=False, emoji=False)
            elif not console.is_terminal:
                console.print(f"  {key}: {result}", markup=False, emoji=False)

        if store.resumed:
            console.print(f"resuming: {store.resumed} points already measured")
        ctx = Context(arch, hw, host, quick, store, point_timeout, budget, max_model_len, on_point, options)
        for name in methods:
            METHODS[name].measure(ctx, sections)
    profile = Profile(**sections)
    check_fit(profile, accept_poor_fit)
    save_profile(profile, path)
    store.finish()
    return profile, path


def check_fit(profile, accept_poor_fit: bool) -> None:
    """Refuse (exit 2) a profile whose step fit fails on its held-out points; the measured points stay saved,
    so `--resume --accept-poor-fit` writes it without measuring again."""
    if profile.steps is None:
        return
    q = profile.steps.fit.quality
    if q.r2 >= MIN_HELD_OUT_R2 and q.p95_rel_residual <= MAX_HELD_OUT_P95:
        return
    message = (
        f"the step fit is poor on its held-out points: R^2 {q.r2:.2f} (at least {MIN_HELD_OUT_R2:g} wanted), "
        f"p95 error {q.p95_rel_residual:.0%} (at most {MAX_HELD_OUT_P95:.0%}); "
    )
    if not accept_poor_fit:
        raise InputError(
            message
            + "not written. Measure on a quieter host, or --resume --accept-poor-fit to write it anyway",
            "--accept-poor-fit",
        )
    Console(stderr=True).print(f"warning: {message}written because of --accept-poor-fit", markup=False)


def print_profile(profile, path: Path, console: Console) -> None:
    console.print(f"[bold]profile[/bold] {path} ({profile.model} on {profile.hardware})")
    if profile.steps:
        fit, q = profile.steps.fit, profile.steps.fit.quality
        layers = profile.steps.layer_scaling_r2
        console.print(
            f"steps: {len(profile.steps.samples)} {STEP_ORIGINS.get(profile.steps.provenance.method, 'from')} "
            f"({profile.steps.provenance.tool}) "
            f"({profile.steps.provenance.device_kind}); fit on {q.num_train}, checked on {q.num_test} held out: "
            f"R^2 {q.r2:.4f}, p95 |error| {q.p95_rel_residual:.1%}, max {q.max_rel_residual:.1%}"
            + ("" if layers is None else f"; time linear in layers: worst R^2 {layers:.4f}")
        )
        console.print(
            f"  fitted: {fit.intercept_s * 1e3:.3f} ms/step + "
            + " + ".join(f"{v:.3g}/{k}" for k, v in fit.coefficients.items())
        )
    if profile.api_overhead_s is not None:
        console.print(f"API overhead per request (measured): {profile.api_overhead_s * 1e3:.2f} ms")
    if profile.microbenchmarks:
        m = profile.microbenchmarks
        console.print(
            f"micro-benchmarks (measured): matmul {m.matmul_tflops:.3f} TFLOP/s, copy {m.memory_bandwidth_gbs:.1f} GB/s"
        )
    if profile.compile:
        c = profile.compile
        table = Table(
            title=f"compile per token bucket: {c.target} TP{c.tensor_parallel_size} ({c.provenance.method})"
        )
        for col in ("bucket", "cold s", "warm s", "step ms", "peak HBM GiB"):
            table.add_column(col, justify="right")
        for s in c.samples:
            table.add_row(
                str(s.token_bucket),
                f"{s.cold_s:.2f}",
                "-" if s.warm_s is None else f"{s.warm_s:.3f}",
                "-" if s.estimated_step_s is None else f"{s.estimated_step_s * 1e3:.2f}",
                "-" if s.peak_hbm_bytes is None else f"{s.peak_hbm_bytes / 2**30:.1f}",
            )
        console.print(table)
        if c.fits_hbm is False:
            console.print(f"[red]does not fit:[/red] {c.fit_reason}")
        if c.compile_host is not None:
            h = c.compile_host
            console.print(
                f"compile times are this host's ({h.cpu}, {h.logical_cpus} CPUs; reference compile "
                f"{h.reference_compile_s:.2f} s): scale by a TPU VM host's reference time over this one"
            )
    if profile.kernels:
        k = profile.kernels
        table = Table(
            title=f"attention kernel vs reference, one layer ({k.provenance.device_kind}, measured)"
        )
        for col in (
            "case",
            "tokens",
            "seqs",
            "kv tokens",
            "kernel us",
            "reference us",
            "speed-up",
            "MBU",
            "FLOP util",
        ):
            table.add_column(col, justify="right")
        for x in k.samples:
            table.add_row(
                x.case,
                str(x.num_tokens),
                str(x.num_seqs),
                str(x.kv_read_tokens),
                f"{x.kernel_s * 1e6:.0f}",
                f"{x.reference_s * 1e6:.0f}",
                f"{x.reference_s / x.kernel_s:.2f}x",
                f"{x.mbu:.1%}",
                f"{x.flop_utilization:.1%}",
            )
        console.print(table)
    for col in profile.collectives:
        console.print(
            f"all-reduce ({col.backend}, {col.ranks} ranks, measured): {col.hop_latency_s * 1e6:.1f} us/hop, "
            f"{col.link_bandwidth_gbs:.2f} GB/s; held-out R^2 {col.quality.r2:.3f}"
        )


if __name__ == "__main__":
    main()
