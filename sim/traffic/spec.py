"""The workload section of a scenario: request lengths and arrivals, owned by the traffic layer that draws
them (sim/traffic/). sim/scenario.py composes it into the Scenario."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sim.strict import FilePath, StrictModel

# ---- request lengths ----------------------------------------------------------------------------------


class FixedLengths(StrictModel):
    """Every request has the same prompt and output length (the harness's synthetic workloads)."""

    kind: Literal["fixed"]
    input_len: int = Field(..., ge=1, description="Prompt tokens.")
    output_len: int = Field(..., ge=1, description="Output tokens (ignore_eos: always generated in full).")


class RandomLengths(StrictModel):
    """Uniform integers in [len*(1-range_ratio), len*(1+range_ratio)], as `vllm bench serve --dataset-name
    random --random-range-ratio` draws them."""

    kind: Literal["random"]
    input_len: int = Field(..., ge=1)
    output_len: int = Field(..., ge=1)
    range_ratio: float = Field(0.0, ge=0.0, lt=1.0)


class LognormalLengths(StrictModel):
    """Log-normal prompt and output lengths given by their means and log-space sigmas, clipped to bounds."""

    kind: Literal["lognormal"]
    input_mean: float = Field(..., gt=0)
    input_sigma: float = Field(..., ge=0)
    output_mean: float = Field(..., gt=0)
    output_sigma: float = Field(..., ge=0)
    min_input_len: int = Field(1, ge=1)
    max_input_len: int = Field(8192, ge=1)
    min_output_len: int = Field(1, ge=1)
    max_output_len: int = Field(8192, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> LognormalLengths:
        if self.min_input_len > self.max_input_len:
            raise ValueError("min_input_len must be <= max_input_len")
        if self.min_output_len > self.max_output_len:
            raise ValueError("min_output_len must be <= max_output_len")
        return self


class ShareGPTLikeLengths(StrictModel):
    """A ShareGPT-shaped distribution without the dataset: log-normal lengths whose means are the seed talk's
    "~220 -> 280" tokens (docs/references.md#seed-harness) and whose prompts are clipped to the harness filter
    4 <= prompt <= 8192. The sigmas are estimates of ShareGPT's spread (heavy right tail), not fitted to the
    dataset; point `kind: sharegpt_file` at a local copy for the real thing."""

    kind: Literal["sharegpt_like"]
    input_mean: float = Field(220.0, gt=0)
    input_sigma: float = Field(1.0, ge=0)
    output_mean: float = Field(280.0, gt=0)
    output_sigma: float = Field(0.9, ge=0)
    max_prompt_len: int = Field(8192, ge=4)
    max_output_len: int = Field(4096, ge=1)


class ShareGPTFileLengths(StrictModel):
    """Lengths from a local ShareGPT JSON (first human turn -> prompt, next turn -> completion), filtered
    4 <= prompt <= max_prompt_len and shuffled with the scenario seed, as the seed harness builds it.
    Token counts are characters / chars_per_token (no tokenizer in the core install), labelled approximate."""

    kind: Literal["sharegpt_file"]
    path: FilePath
    max_prompt_len: int = Field(8192, ge=4)
    fixed_output_len: int | None = Field(None, ge=1)
    chars_per_token: float = Field(4.0, gt=0)


class TraceLengths(StrictModel):
    """A recorded trace: servesim's own CSV/JSONL (arrival_s, input_tokens, output_tokens), Mooncake JSONL
    (with block hash ids), Azure LLM inference CSV, BurstGPT CSV, vLLM benchmark JSONL with token ids, or
    a conversation trace (docs/workloads.md maps every format's columns). The trace fixes the arrival
    times too, so `workload.arrivals` must be left out."""

    kind: Literal["trace"]
    path: FilePath
    format: Literal["auto", "servesim", "mooncake", "azure", "burstgpt", "token_ids", "conversations"] = (
        Field("auto", description="auto: recognised by its columns.")
    )
    rate_scale: float = Field(1.0, gt=0, description="Divide the trace's times by this: 2 = twice the rate.")
    start_s: float = Field(0.0, ge=0, description="Keep the trace from this time (after scaling) on.")
    end_s: float | None = Field(None, gt=0, description="... up to this time (after scaling).")


LengthSpec = Annotated[
    FixedLengths
    | RandomLengths
    | LognormalLengths
    | ShareGPTLikeLengths
    | ShareGPTFileLengths
    | TraceLengths,
    Field(discriminator="kind"),
]


# ---- arrivals -----------------------------------------------------------------------------------------


class RatePoint(StrictModel):
    at_s: float = Field(..., ge=0, description="From this simulated time on ...")
    rate: float = Field(..., ge=0, le=1e6, description="... the base rate is this many requests/s.")


class FlashSpike(StrictModel):
    """Multiplies the rate by `multiplier` over [start_s, start_s+duration_s], ramping linearly up over ramp_s
    before the window and down over ramp_s after it."""

    start_s: float = Field(..., ge=0)
    duration_s: float = Field(..., gt=0)
    multiplier: float = Field(..., gt=0, le=1e4)
    ramp_s: float = Field(0.0, ge=0)


class Diurnal(StrictModel):
    """rate x (1 + amplitude * cos(2 pi (t - peak_at_s) / period_s)): a daily cycle peaking at peak_at_s."""

    period_s: float = Field(86400.0, gt=0)
    amplitude: float = Field(..., ge=0, le=1)
    peak_at_s: float = Field(0.0)


class ArrivalSpec(StrictModel):
    """When requests arrive. Gaps follow `vllm bench serve`: gamma(shape=burstiness, scale=1/(rate*burstiness)),
    so the mean gap is 1/rate and the coefficient of variation 1/sqrt(burstiness); the first request also waits
    one gap. Time-varying rates (schedule x spikes x diurnal) compose by time rescaling."""

    process: Literal["poisson", "gamma", "constant"] = Field(
        "poisson", description="poisson = gamma with burstiness 1; constant = evenly spaced."
    )
    rate: float | Literal["inf"] = Field(..., description="Base requests/s; 'inf' sends everything at t=0.")
    burstiness: float = Field(1.0, gt=0, description="Gamma shape (process: gamma); < 1 is burstier.")
    schedule: list[RatePoint] = Field(default_factory=list, description="Piecewise-constant base rate.")
    spikes: list[FlashSpike] = Field(default_factory=list)
    diurnal: Diurnal | None = None

    @field_validator("rate")
    @classmethod
    def _rate_positive(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and (not math.isfinite(value) or value <= 0):
            raise ValueError("must be > 0 (or 'inf' for everything at t=0)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ArrivalSpec:
        if self.process == "poisson" and self.burstiness != 1.0:
            raise ValueError("burstiness applies to process 'gamma'; poisson is burstiness 1")
        if self.rate == "inf" and (self.schedule or self.spikes or self.diurnal):
            raise ValueError("rate 'inf' sends everything at t=0; schedule, spikes and diurnal do not apply")
        times = [p.at_s for p in self.schedule]
        if times != sorted(times):
            raise ValueError("schedule must be sorted by at_s")
        return self

    @property
    def is_instant(self) -> bool:
        return self.rate == "inf"


class SharedPrefix(StrictModel):
    """Every request starts with one of `tenants` system prompts of `tokens` tokens (a tenant drawn
    uniformly per request, or per conversation), followed by its own text of the drawn input length."""

    tenants: int = Field(1, ge=1, description="Distinct system prompts.")
    tokens: int = Field(..., ge=1, description="Tokens of each system prompt.")


class Conversations(StrictModel):
    """Multi-turn sessions. Each arrival starts a conversation; turn n's prompt resends the whole history --
    every earlier message and answer -- plus a new message of the drawn input length, and is sent
    `think_time_s` (exponential, this mean) after the previous answer ended: closed per conversation, so a
    slow server delays later turns. num_requests counts turns."""

    turns: float = Field(..., ge=1, description="Turns per conversation: this many, or this mean.")
    turns_distribution: Literal["fixed", "geometric"] = Field(
        "geometric", description="fixed = every conversation has `turns` turns (rounded)."
    )
    think_time_s: float = Field(
        5.0, ge=0, description="Mean user think time between an answer and the next turn."
    )


class WorkloadSpec(StrictModel):
    lengths: LengthSpec
    arrivals: ArrivalSpec | None = Field(None, description="Required unless lengths.kind is 'trace'.")
    ignore_eos: bool = Field(True, description="Outputs run to their full length (recorded as metadata).")
    request_timeout_s: float = Field(
        600.0, gt=0, description="Client timeout; the seed harness's default is 600 s. Late requests fail."
    )
    sessions: int | None = Field(
        None,
        ge=1,
        description="Distinct users; each request belongs to one drawn uniformly (for session_affinity).",
    )
    prefix: SharedPrefix | None = Field(
        None, description="Shared system prompts: token identity that prefix caching can hit (see prefix)."
    )
    conversations: Conversations | None = Field(
        None, description="Multi-turn sessions resending their history (see conversations)."
    )
    max_concurrency: int | None = Field(
        None,
        ge=1,
        description="Clients' cap on requests in flight (`vllm bench serve --max-concurrency`): a request "
        "that arrives while this many are in flight waits client-side for one to end, and its latencies "
        "count from when it is sent. With `arrivals.rate: inf` this is a closed loop of N clients, each "
        "sending its next request when its last one ends.",
    )

    @model_validator(mode="after")
    def _arrivals_present(self) -> WorkloadSpec:
        is_trace = self.lengths.kind == "trace"
        if is_trace and self.arrivals is not None:
            raise ValueError("a trace carries its own arrival times; remove workload.arrivals")
        if not is_trace and self.arrivals is None:
            raise ValueError("workload.arrivals is required unless lengths.kind is 'trace'")
        if self.conversations is not None and self.sessions is not None:
            raise ValueError("conversations are the sessions: remove workload.sessions")
        if is_trace and (self.conversations is not None or self.prefix is not None):
            raise ValueError("a trace brings its own requests: prefix and conversations do not apply")
        return self
