"""Faults: when they strike (sampling), and delivering them to the fleet (FaultInjector).

A replica of TP chips fails at the first of its chips' failures:
exponential: the minimum of n exponentials of mean m is exponential of mean m / n;
Weibull(k, scale s): the minimum of n is Weibull(k, s * n^(-1/k)), and s = m / Gamma(1 + 1/k) keeps the
per-unit mean at m.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import simpy

from sim.fleet.controller import ReplicaController
from sim.fleet.hosts import Host
from sim.fleet.spec import FailureProcess, FaultsSpec, InjectedFault
from sim.replica.replica import Replica

HOUR_S = 3600.0


def time_to_failure_s(process: FailureProcess, units: int, rng: np.random.Generator) -> float:
    """Seconds until the first of `units` independent units fails."""
    mean_s = process.mtbf_h * HOUR_S
    if process.distribution == "exponential":
        return float(rng.exponential(mean_s / units))
    k = process.weibull_shape
    scale = mean_s / math.gamma(1.0 + 1.0 / k) * units ** (-1.0 / k)
    return float(scale * rng.weibull(k))


def mean_time_to_failure_s(process: FailureProcess, units: int) -> float:
    """The closed-form mean of time_to_failure_s (for tests and reports)."""
    mean_s = process.mtbf_h * HOUR_S
    if process.distribution == "exponential":
        return mean_s / units
    return mean_s * units ** (-1.0 / process.weibull_shape)


class FaultInjector:
    """Random and scheduled faults of a scenario, delivered to the replica controller.

    Chip failures: each replica draws its time to failure (first of its TP chips) when it becomes ready.
    Host failures, spot preemptions and maintenance: each host draws its own when it is opened. Injected
    faults happen at their given times to whichever replica or host has that index then."""

    def __init__(self, env: simpy.Environment, faults: FaultsSpec, controller: ReplicaController, rng):
        self.env, self.faults, self.controller, self.rng = env, faults, controller, rng
        for fault in faults.inject:
            env.process(self._injected(fault))

    def _after(self, delay_s: float, action: Callable[[], None]):
        yield self.env.timeout(delay_s)
        action()

    def replica_ready(self, replica: Replica) -> None:
        process = self.faults.chip_failures
        if process is None:
            return
        ttf = time_to_failure_s(process, self.controller.settings.tensor_parallel_size, self.rng)
        self.env.process(self._after(ttf, lambda: self._chip_failure(replica)))

    def _chip_failure(self, replica: Replica) -> None:
        if replica.is_up:
            self.controller.crash(replica, "chip failure")

    def host_opened(self, host: Host) -> None:
        faults, env, rng, controller = self.faults, self.env, self.rng, self.controller
        if faults.host_failures is not None:
            ttf = time_to_failure_s(faults.host_failures, 1, rng)
            env.process(self._after(ttf, lambda: controller.crash_host(host, "host failure")))
        for name, process in (("preemption", faults.preemption), ("maintenance", faults.maintenance)):
            if process is not None:
                at = float(rng.exponential(process.mean_interval_h * HOUR_S))
                env.process(self._after(at, partial(controller.notice_host, host, process.notice_s, name)))

    def _injected(self, fault: InjectedFault):
        yield self.env.timeout(fault.at_s)
        controller = self.controller
        cause = f"injected {fault.kind}"
        if fault.target == "host":
            if fault.index < len(controller.hosts.hosts):
                host = controller.hosts.hosts[fault.index]
                if fault.kind == "crash":
                    controller.crash_host(host, cause)
                else:
                    controller.notice_host(host, fault.notice_s, cause)
            return
        if fault.index < len(controller.replicas):
            replica = controller.replicas[fault.index]
            if fault.kind == "crash":
                controller.crash(replica, cause)
            else:
                controller.notice(replica, fault.notice_s, cause)
