"""The fleet: replicas behind a router, fed by the workload's arrival process."""
