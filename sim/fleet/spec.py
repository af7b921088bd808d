"""The fleet sections of a scenario: replicas and routing, admission, retries, autoscaling and faults, owned
by the fleet layer (sim/fleet/). sim/scenario.py composes them into the Scenario.

Every default cites where it comes from (Kubernetes HPA, Knative, Envoy, cloud documentation); numbers
without a published figure say "estimated".
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from sim.registry import RegistryKey
from sim.strict import StrictModel


def _routers():
    from sim.fleet.router import ROUTERS

    return ROUTERS


def _policies():
    from sim.fleet.policies import POLICIES

    return POLICIES


# ---- router: admission and retries --------------------------------------------------------------------


class AdmissionSpec(StrictModel):
    """Queue caps. A request refused by a cap fails at once with an HTTP-style reason and is counted."""

    max_waiting_per_replica: int | None = Field(
        None,
        ge=0,
        description="A replica refuses (HTTP 503) when this many requests already wait in it "
        "(vLLM's optional max_num_queued_reqs); none = unbounded, vLLM's default.",
    )
    max_fleet_waiting: int | None = Field(
        None,
        ge=0,
        description="The router refuses (HTTP 429) when this many requests wait fleet-wide, replica queues "
        "and its own hold queue together; none = unbounded.",
    )


class RetrySpec(StrictModel):
    """What the router does with requests that a failed replica drops. A retry starts the request over on
    another replica (prompt prefilled again, output generated again); its TTFT, TPOT and E2E still count from
    the original arrival. Back-off is Envoy's: attempt k waits uniform(0, min(max, base x (2^k - 1)))."""

    budget: int = Field(
        1, ge=0, description="Retries per request; 1 is Envoy's default num_retries (route retry_policy)."
    )
    backoff_base_s: float = Field(0.025, ge=0, description="Envoy's default retry base_interval, 25 ms.")
    backoff_max_s: float = Field(0.25, ge=0, description="Envoy's default max_interval, 10 x base_interval.")
    eject_after_refusals: int | None = Field(
        5,
        ge=1,
        description="The router stops sending to a replica after this many refused connections in a row "
        "(Envoy outlier detection's consecutive-failure default, 5); none = only the health check "
        "(faults.detection_s) takes a crashed replica out of routing.",
    )
    avoid_previous_replica: bool = Field(
        True,
        description="A retry never goes back to the replica that dropped it (Envoy's previous_hosts retry "
        "predicate); off = the routing policy may pick it again.",
    )


class FleetSpec(StrictModel):
    replicas: int = Field(1, ge=1, description="Identical vLLM replicas.")
    tensor_parallel_size: int = Field(1, ge=1, description="Chips per replica.")
    replicas_per_host: int | None = Field(
        None, ge=1, description="Replicas packed on one host (default: as many as its chips allow)."
    )
    interconnect: str | None = Field(
        None, description="Link the TP all-reduces use (a key of the hardware's links); default: its fastest."
    )
    collective_jitter_sigma: float | None = Field(
        None, ge=0, description="Log-normal sigma of per-rank all-reduce noise; default per link type."
    )
    router: Annotated[str, RegistryKey(_routers, "router")] = Field(
        "round_robin",
        description="round_robin; least_outstanding (fewest waiting + running); least_kv (lowest KV-cache "
        "use); session_affinity (a session's requests go to the same replica while it is up); prefix_aware; "
        "with pools: weighted (by fleet.pool_weight), cheapest_first (cheapest pool with headroom), "
        "spill_over (the next pool when one queues past fleet.spill_waiting).",
    )
    admission: AdmissionSpec = Field(
        default_factory=AdmissionSpec, description="Queue caps (see fleet.admission)."
    )
    retry: RetrySpec = Field(
        default_factory=RetrySpec, description="Retries of dropped requests (see fleet.retry)."
    )
    usd_per_chip_hour: float | None = Field(
        None, gt=0, description="Price of one chip-hour, for cost per good request (reported as 'scenario')."
    )
    pool_weight: float = Field(
        1.0, gt=0, description="Share of requests the weighted router sends to this pool (see pools)."
    )
    spill_waiting: int = Field(
        0,
        ge=0,
        description="spill_over router: this pool takes requests while its least busy replica has at most "
        "this many waiting; past it they go to the next pool (see pools).",
    )
    spill_ttft_ms: float | None = Field(
        None,
        gt=0,
        description="spill_over router, instead of spill_waiting: this pool takes a request while its predicted "
        "TTFT there (prompt tokens queued ahead plus its own, over the pool's full-budget prefill rate) is "
        "within this many ms.",
    )


# ---- autoscaler ---------------------------------------------------------------------------------------


class AutoscalerSpec(StrictModel):
    """Scales the replica count on a metric, HPA-style: every interval_s, recommendation =
    ceil(fleet total of the metric (averaged over metric_window_s) / target), kept unchanged when within
    `tolerance` of the current count; for `ttft`, ceil(ready x observed / target). Scale-up takes the
    lowest recommendation of the last scale_up_stabilization_s, scale-down the highest of the last
    scale_down_stabilization_s, then min/max, cooldowns and the per-interval scale-up limit apply. Replicas
    present at t=0 are ready; every added one goes through the full cold start (see startup)."""

    policy: Annotated[str, RegistryKey(_policies, "autoscaler policy")] = Field(
        ...,
        description="target_inflight: waiting + running per replica (Knative/KServe concurrency target); "
        "queue_length: waiting requests per replica (HPA on vllm:num_requests_waiting); kv_usage: KV-cache "
        "use per replica, 0-1 (HPA on vllm:kv_cache_usage_perc); ttft: observed TTFT quantile, ms.",
    )
    target: float = Field(..., gt=0, description="Per-replica target of the metric (ms for ttft).")
    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(..., ge=1)
    interval_s: float = Field(
        15.0, ge=0.1, description="Decision interval; 15 s is the HPA controller's default sync period."
    )
    metric_window_s: float = Field(
        60.0, ge=0.1, description="Metric averaging window; 60 s is Knative's default stable window."
    )
    sample_s: float = Field(
        1.0, ge=0.01, description="How often the metric is sampled inside the window (at least every 10 ms)."
    )
    tolerance: float = Field(
        0.1, ge=0, description="No change while |metric/target - 1| <= tolerance (HPA default 0.1)."
    )
    scale_up_stabilization_s: float = Field(0.0, ge=0, description="HPA default for scale-up: 0 s.")
    scale_down_stabilization_s: float = Field(300.0, ge=0, description="HPA default for scale-down: 300 s.")
    scale_up_cooldown_s: float = Field(0.0, ge=0, description="No scale-up sooner than this after one.")
    scale_down_cooldown_s: float = Field(0.0, ge=0, description="No scale-down sooner than this after one.")
    max_scale_up_step: int | None = Field(
        None,
        ge=1,
        description="Most replicas added per decision; default is HPA's rule, max(double, +4) per period.",
    )
    ttft_quantile: float = Field(0.9, gt=0, lt=1, description="Quantile of TTFT the ttft policy watches.")
    drain_on_scale_down: bool = Field(
        True, description="Removed replicas finish their requests first; off = their requests are retried."
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalerSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must be <= max_replicas")
        if self.policy == "kv_usage" and self.target > 1:
            raise ValueError("kv_usage target is a fraction of the KV cache, 0-1")
        return self


# ---- faults -------------------------------------------------------------------------------------------


class FailureProcess(StrictModel):
    """Time to failure of one unit. Weibull with shape k has scale mtbf / Gamma(1 + 1/k), so mtbf_h stays
    the mean; k = 1 is exponential, k < 1 infant mortality, k > 1 wear-out."""

    distribution: Literal["exponential", "weibull"] = "exponential"
    mtbf_h: float = Field(..., gt=0, description="Mean time between failures of one unit, hours.")
    weibull_shape: float = Field(1.0, gt=0, description="Weibull k (distribution: weibull).")

    @model_validator(mode="after")
    def _shape(self) -> FailureProcess:
        if self.distribution == "exponential" and self.weibull_shape != 1.0:
            raise ValueError("weibull_shape applies to distribution 'weibull'")
        return self


class NoticeProcess(StrictModel):
    """Events announced ahead (spot/preemptible reclaim, TPU maintenance), Poisson in time per host. At the
    notice the host's replicas stop taking requests and replacements start; at its end they stop and what is
    still running is retried."""

    mean_interval_h: float = Field(..., gt=0, description="Mean time between events on one host, hours.")
    notice_s: float = Field(..., ge=0, description="Warning before the host goes away.")


class InjectedFault(StrictModel):
    """A fault at a chosen time, for what-ifs: `crash` (no warning) or `notice` (warning of notice_s)."""

    at_s: float = Field(..., ge=0)
    kind: Literal["crash", "notice"] = "crash"
    target: Literal["replica", "host"] = "replica"
    index: int = Field(0, ge=0, description="Replica id, or host id (hosts numbered in placement order).")
    notice_s: float = Field(30.0, ge=0, description="For kind notice: warning before the stop.")


class FaultsSpec(StrictModel):
    """Random and scheduled failures. One chip failing takes down its whole TP group (the replica); a host
    failing takes down every replica on it. A crashed replica is noticed after detection_s; until then the
    router still sends it requests, which fail at once and are retried. Each lost replica is replaced at
    detection (or at the notice) by a new one that goes through the full cold start."""

    chip_failures: FailureProcess | None = Field(None, description="Per chip; a replica fails at its first.")
    host_failures: FailureProcess | None = Field(None, description="Per host; all its replicas fail.")
    preemption: NoticeProcess | None = Field(
        None, description="Spot/preemptible reclaims per host (GCE gives spot VMs a 30 s notice)."
    )
    maintenance: NoticeProcess | None = Field(None, description="Host maintenance events per host.")
    inject: list[InjectedFault] = Field(default_factory=list, description="Scheduled faults.")
    detection_s: float = Field(
        30.0,
        ge=0,
        description="Crash to detection; 30 s = Kubernetes probe defaults, periodSeconds 10 x failureThreshold 3.",
    )
    replace: bool = Field(True, description="Start a replacement for every lost replica.")
    repair_s: float | None = Field(
        None,
        ge=0,
        description="Repair time: a crashed unit's machine comes back after this long, and its replacement "
        "waits for it instead of acquiring new capacity (no provisioning, no stock-out); none = new capacity.",
    )


# ---- prefill/decode disaggregation ---------------------------------------------------------------------


RDMA_NIC_GBS = 50.0  # one 400 Gb/s RDMA NIC per GPU (docs/references.md#disaggregated-prefill)


class DisaggregationSpec(StrictModel):
    """Prefill/decode disaggregation over two of the scenario's pools: prompts are computed on the prefill
    pool, their KV cache crosses to the decode pool, which generates the output (see disaggregation)."""

    prefill_pool: str = Field(..., description="The pool (a key of pools) that computes prompts.")
    decode_pool: str = Field(..., description="The pool that generates outputs.")
    kv_link: str | None = Field(
        None,
        description="A link of the prefill pool's hardware (catalog links, e.g. nvlink4 when both pools share "
        "an NVLink domain) that carries the KV; default: kv_bandwidth_gbs.",
    )
    kv_bandwidth_gbs: float | None = Field(
        None,
        gt=0,
        description=f"KV transfer bandwidth per chip, GB/s one way; default {RDMA_NIC_GBS:g} (one 400 Gb/s RDMA "
        "NIC per chip, as in a DGX H100).",
    )
    kv_latency_s: float = Field(
        0.001,
        ge=0,
        description="Fixed time per transfer (connection, registration, first byte); the default 1 ms is an "
        "estimate, not a measurement.",
    )

    @model_validator(mode="after")
    def _two_pools(self) -> DisaggregationSpec:
        if self.prefill_pool == self.decode_pool:
            raise ValueError("prefill_pool and decode_pool must be two different pools")
        if self.kv_link is not None and self.kv_bandwidth_gbs is not None:
            raise ValueError("give kv_link or kv_bandwidth_gbs, not both")
        return self
