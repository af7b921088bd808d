"""Hosts: the machines (GPU VMs, TPU VMs/slices) replicas are packed onto, so that a host failure or a
maintenance event takes down every replica on it, and so that a new replica only pays for acquiring a
machine when no running host has a free slot."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class Host:
    host_id: int  # placement order: hosts of the initial fleet first
    slots: int  # replicas it can hold (chips per host // TP)
    members: set = field(default_factory=set)  # replicas and launches placed on it
    alive: bool = True  # False once failed, reclaimed, or released after its last replica left

    @property
    def free(self) -> int:
        return self.slots - len(self.members)


class HostPool:
    def __init__(self, slots_per_host: int):
        self.slots_per_host = slots_per_host
        self.hosts: list[Host] = []  # every host ever opened, by host_id

    def place(self, member) -> tuple[Host, bool]:
        """Put member on the first live host with a free slot, else on a new host; says whether it is new."""
        for host in self.hosts:
            if host.alive and host.free > 0:
                host.members.add(member)
                return host, False
        host = Host(len(self.hosts), self.slots_per_host)
        host.members.add(member)
        self.hosts.append(host)
        return host, True

    def leave(self, host: Host, member) -> None:
        """member is gone; a host left empty is released (no one pays for an idle machine)."""
        host.members.discard(member)
        if not host.members:
            host.alive = False

    @property
    def num_alive(self) -> int:
        return sum(1 for h in self.hosts if h.alive)
