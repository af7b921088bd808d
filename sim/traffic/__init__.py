"""Traffic: the scenario's workload section (spec.py) and the workload it draws -- arrival times
(arrivals.py), request lengths (lengths.py), recorded traces (trace.py) -- assembled in workload.py."""
