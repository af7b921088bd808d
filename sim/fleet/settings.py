"""The fleet's resolved configuration: what the fleet layer needs from a scenario, with defaults applied.

Built once by sim/resolve.py; the fleet never reads the scenario itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.fleet.spec import AdmissionSpec, AutoscalerSpec, FaultsSpec, RetrySpec


@dataclass(frozen=True)
class FleetSettings:
    replicas: int  # replicas at t = 0 (and the controller's first target)
    tensor_parallel_size: int  # chips per replica (a chip failure takes its whole replica down)
    replicas_per_host: int  # replicas sharing one host (a TP group never spans hosts)
    router: str  # key of sim/fleet/router.py's ROUTERS
    admission: AdmissionSpec
    retry: RetrySpec
    autoscaler: AutoscalerSpec | None
    faults: FaultsSpec | None
    stockout_probability: float  # chance one capacity request finds no stock
    stockout_retry_s: float  # wait before asking again
    request_timeout_s: float  # the client gives up after this long (the harness's 600 s)
    max_model_len: int  # prompts at or above it are refused (HTTP 400); outputs are capped to fit
    api_overhead_s: float  # per-request server work outside engine steps (HTTP, tokenisation)
    tokenize_s_per_token: float  # the API server's one tokenizer thread: time per prompt token, FIFO
    max_concurrency: int | None  # clients' cap on requests in flight (None: open loop)
    enable_prefix_caching: bool  # requests with token identity get their block hashes when sent
    block_size: int  # tokens per KV block of the replicas (block hashes depend on it)
    usd_per_chip_hour: float | None  # price of one chip-hour, for cost per good request

    @property
    def drain_on_scale_down(self) -> bool:
        return self.autoscaler.drain_on_scale_down if self.autoscaler is not None else True
