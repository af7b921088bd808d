"""Named models, accelerators, SLO classes and efficiency factors, loaded from the YAML files beside this
module. The YAML files are the data; each entry cites its public source."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

CATALOG_DIR = Path(__file__).parent  # the YAML files of the catalog


@cache
def _load(name: str) -> dict[str, Any]:
    with open(CATALOG_DIR / f"{name}.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


# Each loader returns the parsed YAML: mappings of entries whose shapes each file's comments describe.


def model_entries() -> dict[str, Any]:
    return _load("models")


def hardware_entries() -> dict[str, Any]:
    return _load("hardware")


def slo_classes() -> dict[str, Any]:
    return _load("slo_classes")


def efficiency_defaults() -> dict[str, Any]:
    return _load("efficiency")


def runtime_defaults() -> dict[str, Any]:
    return _load("runtime")
