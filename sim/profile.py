"""The calibration profile: what `calibrate` measured on a host, in the form `simulate` consumes.

The simulator owns this schema; every `calibrate/` method writes into it. Each section carries its own
provenance (host, device kind, library versions, date, method), because one profile may combine methods --
measured step times from torch, AOT compile times from libtpu, an all-reduce fit from gloo.

A profile is JSON (or YAML) validated by pydantic; a bad file is an InputError naming the field, like a bad
scenario.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from sim.errors import InputError
from sim.strict import StrictModel, validation_error_to_input_error

SCHEMA_VERSION: Literal[1] = 1
# How a section's numbers were obtained: measured on the host; composed from published per-kernel
# measurements (kernel-tables); the XLA compiler's own cost model (compiler-estimated); compiled ahead of time
# for a described chip (aot-compiled); estimated; or fitted.
Method = Literal["measured", "kernel-tables", "compiler-estimated", "aot-compiled", "estimated", "fitted"]


class Provenance(StrictModel):
    method: Method
    tool: str = Field(..., description="calibrate method that produced it, e.g. 'torch', 'tpu-aot'.")
    host: str = Field(..., description="Machine name.")
    device_kind: str = Field(..., description="What ran it: CPU model, GPU name, TPU topology.")
    libraries: dict[str, str] = Field(default_factory=dict, description="package -> version")
    date: str = Field(..., description="UTC ISO-8601 time of measurement.")
    notes: str = ""


class StepSample(StrictModel):
    """One measured (or estimated) engine step, in the features the step-cost fit uses."""

    kind: Literal["prefill", "decode", "mixed"]
    num_tokens: int = Field(..., ge=1, description="Tokens computed in the step.")
    num_seqs: int = Field(..., ge=1, description="Sequences in the step.")
    attention_pairs: int = Field(..., ge=0, description="(query, key) pairs attended, causal.")
    kv_read_tokens: int = Field(..., ge=0, description="KV tokens read (context of every sequence).")
    seconds: float = Field(..., gt=0, description="Step time at the full model depth.")
    layers_measured: list[int] = Field(default_factory=list, description="Depths timed to extrapolate from.")


class FitQuality(StrictModel):
    r2: float = Field(..., description="Coefficient of determination on the held-out points.")
    max_rel_residual: float = Field(..., ge=0)
    p95_rel_residual: float = Field(..., ge=0)
    num_train: int = Field(..., ge=1)
    num_test: int = Field(..., ge=0)


STEP_FEATURES = ("num_tokens", "attention_pairs", "kv_read_tokens", "num_seqs")


def knot_feature(knot: int) -> str:
    """The name of the segment feature: the step's tokens between this knot and the next."""
    return f"num_tokens_from_{knot}"


def token_segments(num_tokens: float, knots: Sequence[int]) -> list[float]:
    """num_tokens split at the knots: [min(t, k1), tokens in (k1, k2], ..., tokens beyond the last knot].
    The parts sum to num_tokens."""
    parts = []
    low = 0.0
    for knot in knots:
        parts.append(min(max(num_tokens - low, 0.0), knot - low))
        low = float(knot)
    parts.append(max(num_tokens - low, 0.0))
    return parts


class StepFit(StrictModel):
    """seconds = intercept_s + sum(coefficient x feature), non-negative coefficients (NNLS).
    Features: num_tokens, attention_pairs, kv_read_tokens, num_seqs. With `token_knots` the token term is
    piecewise linear: "num_tokens" is the slope up to the first knot and each knot's "num_tokens_from_<k>"
    the slope from that knot to the next. Non-negative slopes keep a step from getting cheaper with more
    tokens while letting the curve bend either way: steeper once a dense step's matmuls turn compute bound,
    flatter once a MoE step has touched every expert's weights."""

    intercept_s: float = Field(..., ge=0)
    coefficients: dict[str, float]
    token_knots: list[int] = Field(
        default_factory=list, description="Token counts where the slope may change."
    )
    quality: FitQuality
    max_num_tokens: int = Field(
        ..., ge=1, description="Largest step measured: beyond it the fit extrapolates."
    )
    max_kv_read_tokens: int = Field(..., ge=0)
    max_num_seqs: int = Field(..., ge=1)

    @model_validator(mode="after")
    def _features_present(self) -> StepFit:
        needed = set(STEP_FEATURES) | {knot_feature(k) for k in self.token_knots}
        missing = needed - set(self.coefficients)
        if missing:
            raise ValueError(f"coefficients lack {sorted(missing)}")
        return self

    def token_seconds(self, num_tokens: float) -> float:
        """The fit's token term: one slope per segment between knots."""
        return self.token_curve()(num_tokens)

    def token_curve(self) -> Callable[[float], float]:
        """token_seconds as a function with the segments' sums precomputed (step pricing calls it per step)."""
        c = self.coefficients
        knots = [float(k) for k in self.token_knots]
        slopes = [c["num_tokens"], *(c[knot_feature(k)] for k in self.token_knots)]
        if not knots:
            slope = slopes[0]
            return lambda num_tokens: slope * num_tokens
        lows = [0.0, *knots]
        sums = [0.0]  # the curve's value at the start of each segment
        for j, knot in enumerate(knots):
            sums.append(sums[-1] + slopes[j] * (knot - lows[j]))

        def seconds(num_tokens: float) -> float:
            j = bisect_right(knots, num_tokens)
            return sums[j] + slopes[j] * (num_tokens - lows[j])

        return seconds

    def predict(
        self, num_tokens: float, attention_pairs: float, kv_read_tokens: float, num_seqs: float
    ) -> float:
        c = self.coefficients
        return (
            self.intercept_s
            + self.token_seconds(num_tokens)
            + c["attention_pairs"] * attention_pairs
            + c["kv_read_tokens"] * kv_read_tokens
            + c["num_seqs"] * num_seqs
        )


class InterpolationCheck(StrictModel):
    """How well a table's interpolation predicts measured points it was not given (held out)."""

    points: int = Field(..., ge=0)
    median_rel_error: float = Field(..., ge=0)
    p95_rel_error: float = Field(..., ge=0)
    max_rel_error: float = Field(..., ge=0)


class StepSection(StrictModel):
    provenance: Provenance
    tensor_parallel_size: int = Field(1, ge=1)
    dtype: str = Field("bfloat16", description="Weight dtype the steps were timed with: bfloat16 or fp8.")
    kv_cache_dtype: str = Field("auto", description="KV-cache dtype: auto (= the model dtype) or fp8.")
    vllm_version: str | None = Field(None, description="vLLM version whose kernels were timed, when known.")
    components: dict[str, str] = Field(
        default_factory=dict, description="What the step times include, and where each part came from."
    )
    interpolation_check: dict[str, InterpolationCheck] = Field(
        default_factory=dict, description="Per measured table: error on held-out table points."
    )
    samples: list[StepSample]
    fit: StepFit
    layer_scaling_r2: float | None = Field(None, description="min R^2 of time vs layers over checked points.")


class CompileSample(StrictModel):
    token_bucket: int = Field(..., ge=1)
    cold_s: float = Field(..., ge=0, description="trace + lower + compile with an empty persistent cache.")
    warm_s: float | None = Field(
        None,
        ge=0,
        description="the same with the persistent cache populated; null where it cannot be measured.",
    )
    estimated_step_s: float | None = Field(None, gt=0, description="step time estimate for this shape.")
    flops: float | None = Field(None, ge=0, description="XLA cost analysis, whole model.")
    bytes_accessed: float | None = Field(None, ge=0)
    request_bucket: int | None = Field(None, ge=1, description="Request bucket the step was compiled for.")
    optimal_seconds: float | None = Field(
        None, ge=0, description="The compiler's own estimate of the step (cost_analysis 'optimal_seconds')."
    )
    unpriced_ops: int = Field(0, ge=0, description="Ops the compiler reported as unknown (-1 s), left out.")
    collective_bytes: int | None = Field(None, ge=0, description="Bytes the step's collectives return.")
    peak_hbm_bytes: int | None = Field(None, ge=0, description="Arguments + outputs + temporaries per chip.")


class CompileHost(StrictModel):
    """The machine that compiled: compile wall times are its, not a TPU VM's."""

    cpu: str
    logical_cpus: int = Field(..., ge=1)
    reference_compile_s: float = Field(
        ...,
        gt=0,
        description="Wall time of a fixed reference compile (calibrate/tpu_aot.py: REFERENCE): compile times "
        "scale to another host by the ratio of its reference time to this one.",
    )


class CompileSection(StrictModel):
    provenance: Provenance
    target: str = Field(..., description="What was compiled for: 'cpu', 'tpu v6e (AOT)', ...")
    layers_measured: list[int] = Field(default_factory=list)
    layer_scaling_r2: float | None = None
    tensor_parallel_size: int = Field(1, ge=1, description="Chips the step was sharded over.")
    topology: str | None = Field(None, description="The described TPU topology compiled for (AOT).")
    compile_host: CompileHost | None = None
    fits_hbm: bool | None = Field(None, description="Whether the model's step fits the chips' HBM.")
    fit_reason: str = Field("", description="Why not, in the compiler's or the memory plan's words.")
    samples: list[CompileSample]


class CollectiveSample(StrictModel):
    message_bytes: int = Field(..., ge=1)
    seconds: float = Field(..., gt=0)


class CollectiveSection(StrictModel):
    """Measured all-reduce latency by message size among `ranks` chips, and its ring alpha-beta fit
    t = 2(n-1) alpha + 2(n-1)/n x bytes / bandwidth. The simulator prices a TP group of this many chips by
    the samples themselves (log-log interpolation), the fit only beyond them."""

    provenance: Provenance
    backend: str = Field(..., description="gloo, nccl, vllm-custom ... (what ran each size, when mixed)")
    link: str = Field(..., description="Link the ranks talked over.")
    ranks: int = Field(..., ge=2)
    hop_latency_s: float = Field(..., ge=0)
    link_bandwidth_gbs: float = Field(..., gt=0)
    quality: FitQuality
    samples: list[CollectiveSample]
    jitter_sigma: float | None = Field(
        None,
        ge=0,
        description="Log-normal sigma of per-rank slowdowns measured from repeats; null when the measurement "
        "gives medians only (then no straggler tail is added).",
    )


class MicroBenchmarks(StrictModel):
    provenance: Provenance
    matmul_tflops: float = Field(..., gt=0, description="Best achieved dense matmul rate, model dtype.")
    memory_bandwidth_gbs: float = Field(..., gt=0, description="Achieved copy bandwidth.")


class StartupMeasurement(StrictModel):
    """A measured launch of a real server (`validate startup`): launch to healthy, and first requests."""

    provenance: Provenance
    launch_cmd: str
    cache: Literal["cold", "warm"] = Field(
        ..., description="The compile cache state the launch started from."
    )
    time_to_ready_s: float = Field(..., ge=0)
    max_compile_overhead_s: float = Field(0.0, ge=0, description="Largest per-shape cold minus warm E2E.")
    shapes: list[dict] = Field(
        default_factory=list, description="Per-shape cold/warm E2E, as the harness writes."
    )


class KernelSample(StrictModel):
    """One attention call of one layer on one chip, kernel vs its jnp reference."""

    case: Literal["decode", "prefill", "mixed"]
    num_tokens: int = Field(..., ge=1)
    num_seqs: int = Field(..., ge=1)
    attention_pairs: int = Field(..., ge=0, description="(query, key) pairs attended, causal.")
    kv_read_tokens: int = Field(..., ge=0, description="KV tokens read over all sequences.")
    kernel_s: float = Field(..., gt=0)
    reference_s: float = Field(..., gt=0)
    hbm_bytes: float = Field(..., ge=0, description="KV read + queries + outputs, bytes.")
    flops: float = Field(..., ge=0, description="4 x pairs x q heads x head_dim.")
    mbu: float = Field(..., ge=0, description="hbm_bytes / kernel_s / datasheet bandwidth.")
    flop_utilization: float = Field(..., ge=0, description="flops / kernel_s / datasheet peak.")


class KernelFit(StrictModel):
    """Per-layer attention seconds = intercept_s + sum(coefficient x feature), NNLS.
    Features: kv_read_tokens, attention_pairs, num_seqs."""

    intercept_s: float = Field(..., ge=0)
    coefficients: dict[str, float]
    quality: FitQuality


class KernelSection(StrictModel):
    """Attention kernel timings (`calibrate --method kernels`), for `cost_model.attention: kernel`."""

    provenance: Provenance
    implementation: str = Field(..., description="Which kernel was timed.")
    block_sizes: dict[str, int]
    dtype: str
    tensor_parallel_size: int = Field(1, ge=1, description="Heads per chip = model heads / this.")
    num_q_heads: int = Field(..., ge=1, description="Query heads per chip.")
    num_kv_heads: int = Field(..., ge=1, description="KV heads per chip.")
    head_dim: int = Field(..., ge=1)
    page_size: int = Field(..., ge=1)
    samples: list[KernelSample]
    fit: KernelFit


class Profile(StrictModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    model: str = Field(..., description="Model catalog name the steps were measured for.")
    hardware: str = Field(..., description="Hardware catalog name (the --host given to calibrate).")
    servesim_version: str
    steps: StepSection | None = None
    compile: CompileSection | None = None
    collectives: list[CollectiveSection] = Field(default_factory=list)
    microbenchmarks: MicroBenchmarks | None = None
    api_overhead_s: float | None = Field(None, ge=0, description="Per-request overhead outside engine steps.")
    startup: list[StartupMeasurement] = Field(
        default_factory=list, description="Measured launches, cold/warm."
    )
    kernels: KernelSection | None = Field(None, description="Attention kernel timings (TPU).")


def load_profile(path: str | Path, field: str = "profile") -> Profile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such profile: {path}", field) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read profile {path}: {exc}", field) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InputError(
            f"profile {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}", field
        ) from None
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        inner = validation_error_to_input_error(err)
        raise InputError(f"profile {path}: {inner.field}: {inner.message}", field) from None


def save_profile(profile: Profile, path: str | Path) -> None:
    """Atomic write: a killed run never leaves a half-written profile."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(profile.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(path)
