"""Replicas, a router, and the process that releases the workload's requests at their arrival times."""

from __future__ import annotations

import simpy

from sim.cost.base import StepCostModel
from sim.fleet.router import make_router
from sim.replica.replica import Replica
from sim.replica.request import RequestState, Status
from sim.replica.scheduler import SchedulerConfig
from sim.resolve import ResolvedScenario
from sim.traffic.workload import Workload


class Fleet:
    def __init__(
        self,
        env: simpy.Environment,
        resolved: ResolvedScenario,
        cost_models: list[StepCostModel],
        workload: Workload,
        api_overhead_s: float = 0.0,
    ):
        """cost_models: one per replica (runtimes keep per-replica state such as compiled shapes).
        api_overhead_s: per-request server work outside engine steps (HTTP, tokenisation); a request reaches
        the engine that long after the client sent it, and its latencies still count from the send."""
        self.env = env
        self.workload = workload
        engine = resolved.engine
        self.max_model_len = engine.max_model_len
        self.api_overhead_s = api_overhead_s
        config = SchedulerConfig(
            max_num_seqs=engine.max_num_seqs,
            max_num_batched_tokens=engine.max_num_batched_tokens,
            block_size=engine.block_size,
            num_blocks=resolved.memory.num_blocks,
            enable_chunked_prefill=engine.enable_chunked_prefill,
        )
        timeout = resolved.scenario.workload.request_timeout_s
        self.replicas = [
            Replica(env, i, config, cost_model, request_timeout_s=timeout, on_finished=self._on_finished)
            for i, cost_model in enumerate(cost_models)
        ]
        self.router = make_router(resolved.scenario.fleet.router)
        self.requests: list[RequestState] = []
        self.num_ended = 0
        self.all_ended = env.event()
        if workload.num_requests == 0:
            self.all_ended.succeed()
        env.process(self._release())

    def _on_finished(self, reqs: list[RequestState]) -> None:
        self.num_ended += len(reqs)
        if self.num_ended >= self.workload.num_requests and not self.all_ended.triggered:
            self.all_ended.succeed()

    def _release(self):
        env = self.env
        arrival = self.workload.arrival_s.tolist()
        prompt = self.workload.prompt_tokens.tolist()
        output = self.workload.output_tokens.tolist()
        max_len = self.max_model_len
        delay = self.api_overhead_s
        for i, t in enumerate(arrival):
            if t + delay > env.now:
                yield env.timeout(t + delay - env.now)
            # vLLM caps the output at max_model_len - prompt and rejects prompts that leave no room (HTTP 400).
            req = RequestState(i, t, prompt[i], min(output[i], max_len - prompt[i]))
            self.requests.append(req)
            if prompt[i] >= max_len:
                req.status = Status.FAILED
                req.fail_reason = "prompt longer than max_model_len"
                req.end_s = t
                self._on_finished([req])
                continue
            self.router.choose(self.replicas).submit(req)
