"""Traffic: when requests arrive and how long their prompts and outputs are.

One module draws the workload for both the simulator and (later) the live load generator, so predicted and
measured runs replay the very same trace.
"""

from sim.traffic.workload import Workload, build_workload

__all__ = ["Workload", "build_workload"]
