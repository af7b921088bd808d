"""Talking to live servers: the harness-exact streaming client (client.py), the load generator that replays
a workload against a server (loadgen.py), the start-up probe (startup_probe.py), and the description of the
host a measurement ran on (environment.py). Shared by `validate` (sim/validate/) and `calibrate`."""
