"""Methods `jax` and `tpu-aot`: compile the model's step once per token bucket and time it.

- `jax` runs on whatever JAX backend this host has (CPU here; a TPU host measures for real): per bucket, the
  trace + lower + compile wall time with an empty persistent compilation cache (cold), again after
  clearing JAX's in-memory caches so the persistent cache serves it (warm), and the step's run time.
- `tpu-aot` compiles for a TPU that is not here: `jax.experimental.topologies` with libtpu gives real
  XLA:TPU compiles on a CPU host, so the cold compile wall-clock is real. The step time is *estimated*
  from XLA's cost analysis (FLOPs, bytes) against the datasheet roofline. A CPU host writes TPU cache
  entries but cannot load them (JAX needs a TPU client to deserialize), so warm-cache times stay
  unmeasured here and the simulator keeps its derived warm/cold ratio.
Compiles run at the model's full depth: compile time is not linear in layers (measured for Llama-3.1-8B at
bucket 512 on v5e: 4.7 s at 1 layer, ~9 s at 2-8 layers, 11.3 s at 32), so it cannot be extrapolated from a
shallow model the way step times can. A fresh cache directory is used per run, so "cold" is really cold.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any, cast

from calibrate.store import PointStore, measure_point
from calibrate.timing import median_time
from sim.architecture import ModelArchitecture
from sim.errors import InputError
from sim.hardware import HardwareSpec
from sim.live.environment import cpu_model, provenance
from sim.profile import CompileSample, CompileSection
from sim.runtime.buckets import token_buckets

JAX_HINT = 'pip install "servesim[jax]"  (jax==0.10.2)'
TPU_HINT = 'pip install "servesim[tpu]"  (jax==0.10.2 with its libtpu)'
TOPOLOGIES = {"tpu-v5e": "v5e:2x2", "tpu-v6e": "v6e:2x2", "tpu-v5p": "v5p:2x2x1"}


def require_jax(hint: str = JAX_HINT):
    try:
        import jax
    except ImportError:
        raise InputError(f"this method needs JAX: {hint}", "--method") from None
    return jax


def _configure_cache(jax, directory: str) -> None:
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def _compile_once(jax, fn, args) -> tuple[float, object]:
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return time.perf_counter() - start, compiled


def buckets_for(max_num_batched_tokens: int, quick: bool) -> list[int]:
    buckets = token_buckets(max_num_batched_tokens)
    if not quick:
        return buckets
    return [b for b in buckets if b in (16, 128, 1024)] or buckets[:3]


def _depths(arch: ModelArchitecture) -> list[int]:
    """Full depth only: see the module docstring for why compile times are never extrapolated."""
    return [arch.num_layers]


def measure_compile(
    arch: ModelArchitecture,
    *,
    target: str,
    hw: HardwareSpec | None,
    buckets: list[int],
    quick: bool,
    store: PointStore,
    point_timeout: float | None,
    on_point: Callable[[str, str], None],
) -> CompileSection:
    """target: 'jax' (this host's backend) or a TPU catalog name for AOT."""
    aot = target != "jax"
    if aot:
        # No TPU is attached for AOT compiles, so libtpu's one-process lock only gets in the way of two
        # calibrations (or test runs) at once.
        os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    jax = require_jax(TPU_HINT if aot else JAX_HINT)
    import jax.numpy as jnp

    from calibrate.jax_model import abstract_params, make_forward

    if aot:
        from jax.experimental import topologies
        from jax.sharding import SingleDeviceSharding

        try:
            topo = topologies.get_topology_desc(TOPOLOGIES[target], "tpu")
        except Exception as exc:  # libtpu missing or unable to describe the chip
            raise InputError(
                f"cannot compile for {target} here ({type(exc).__name__}: {exc}); {TPU_HINT}", "--host"
            ) from None
        device: Any = topo.devices[0]
        sharding = SingleDeviceSharding(device)
        device_kind = f"{device.device_kind} (AOT from {cpu_model()})"
    else:
        device = jax.devices()[0]
        sharding = None
        device_kind = f"jax {device.platform}: {device.device_kind}" + (
            f" on {cpu_model()}" if device.platform == "cpu" else ""
        )

    dtype = jnp.bfloat16 if arch.dtype_bytes == 2 else jnp.float32
    forward = make_forward(arch)
    depths = _depths(arch)
    cache_dir = tempfile.mkdtemp(prefix="servesim-xla-cache-")
    _configure_cache(jax, cache_dir)
    # One throw-away compile so process-level compiler start-up is not charged to the first bucket.
    _compile_once(
        jax,
        forward,
        (abstract_params(arch, 1, dtype, sharding), jax.ShapeDtypeStruct((8,), jnp.int32, sharding=sharding)),
    )
    samples: list[CompileSample] = []
    skipped: list[str] = []
    for bucket in buckets:
        key = f"compile:{target}:{bucket}"
        record = measure_point(
            store,
            key,
            partial(_measure_bucket, jax, jnp, forward, arch, bucket, depths, dtype, sharding, aot),
            point_timeout=point_timeout,
            skipped=skipped,
            on_point=on_point,
            failures_are_findings=True,  # XLA refusing a shape (e.g. out of HBM) is a finding, not a crash
        )
        if record is None:
            continue
        # One depth (the full model): each list holds one value.
        cold = record["cold"][0]
        warm = None if record["warm"] is None else record["warm"][0]
        flops = record["flops"][0] if record["flops"] else None
        nbytes = record["bytes"][0] if record["bytes"] else None
        if aot and flops and nbytes and hw is not None:
            step = max(flops / hw.peak_flops, nbytes / hw.memory_bandwidth_bytes_s)
        elif record.get("run") is not None:
            step = record["run"][0]
        else:
            step = None
        samples.append(
            CompileSample(
                token_bucket=bucket,
                cold_s=max(cold, 0.0),
                warm_s=None if warm is None else max(warm, 0.0),
                estimated_step_s=step if step and step > 0 else None,
                flops=flops,
                bytes_accessed=nbytes,
            )
        )
        on_point(key, f"cold {cold:.1f} s" + ("" if warm is None else f", warm {warm:.2f} s"))
    if not samples:
        raise InputError(f"no bucket compiled: {'; '.join(skipped)}", "--point-timeout")
    notes = (
        f"dense prefill graph per token bucket, compiled at depths {depths} and extrapolated to "
        f"{arch.num_layers} layers; fresh persistent cache per run"
    )
    if aot:
        notes += (
            "; warm-cache times need a TPU host (a CPU host cannot load TPU cache entries); step times "
            "estimated from XLA cost analysis against the datasheet"
        )
    if skipped:
        notes += f"; not compiled: {', '.join(skipped)}"
    return CompileSection(
        provenance=provenance(
            "aot-compiled" if aot else "measured", "tpu-aot" if aot else "jax", device_kind, notes
        ),
        target=f"{target} (AOT)" if aot else device_kind,
        layers_measured=depths,
        layer_scaling_r2=None,
        samples=samples,
    )


def _measure_bucket(jax, jnp, forward, arch, bucket, depths, dtype, sharding, aot) -> dict:
    from calibrate.jax_model import abstract_params, random_params

    record: dict[str, Any] = {
        "cold": [],
        "warm": None if aot else [],
        "flops": [],
        "bytes": [],
        "run": None if aot else [],
    }
    for depth in depths:
        args = (
            abstract_params(arch, depth, dtype, sharding),
            jax.ShapeDtypeStruct((bucket,), jnp.int32, sharding=sharding),
        )
        jax.clear_caches()
        cold, compiled = _compile_once(jax, forward, args)
        compiled = cast(Any, compiled)
        record["cold"].append(cold)
        cost = compiled.cost_analysis() or {}
        if isinstance(cost, list):
            cost = cost[0] if cost else {}
        record["flops"].append(float(cost.get("flops", 0.0)))
        record["bytes"].append(float(cost.get("bytes accessed", 0.0)))
        if not aot:
            jax.clear_caches()
            warm, compiled = _compile_once(jax, forward, args)
            record["warm"].append(warm)
            params = random_params(arch, depth, dtype)
            tokens = jnp.arange(bucket, dtype=jnp.int32) % arch.vocab_size
            run = partial(_run_once, compiled, params, tokens)
            record["run"].append(median_time(run, repeats=3))
    if not any(record["flops"]):
        record["flops"] = record["bytes"] = []
    return record


def _run_once(compiled: Any, params: Any, tokens: Any) -> None:
    compiled(params, tokens).block_until_ready()
