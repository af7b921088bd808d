"""Which scheduler a replica runs: vLLM's, or vLLM's with speculative decoding when the engine has it."""

from __future__ import annotations

from sim.replica.scheduler import Scheduler, SchedulerConfig
from sim.replica.speculative import SpeculativeScheduler


def make_scheduler(config: SchedulerConfig) -> Scheduler:
    if config.speculative is None:
        return Scheduler(config)
    return SpeculativeScheduler(config)
