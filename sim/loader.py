"""Read a scenario file, apply ``--set dotted.key=value`` overrides and validate it.

Every failure becomes an InputError whose text names the field path, e.g.
``fleet.replicas: Input should be greater than or equal to 1``, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sim.errors import InputError
from sim.scenario import Scenario
from sim.shipped_profiles import AUTO, NONE
from sim.strict import validation_error_to_input_error


def parse_override(text: str) -> tuple[list[str], Any]:
    """``fleet.replicas=4`` -> (['fleet', 'replicas'], 4); the value is read as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise InputError(f"'{text}' is not of the form dotted.key=value", "--set")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise InputError(f"'{text}' has an empty key", "--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise InputError(f"value of '{key}' is not valid YAML: {exc}", "--set") from None
    return path, value


def set_path(data: dict, path: list[str], value: Any, source: str = "--set") -> None:
    """data[path[0]][path[1]]... = value, creating mappings on the way."""
    node = data
    for part in path[:-1]:
        child = node.get(part) if isinstance(node, dict) else None
        if child is None:
            child = {}
            node[part] = child
        if not isinstance(child, dict):
            raise InputError(f"cannot set '{'.'.join(path)}': '{part}' is not a mapping", source)
        node = child
    node[path[-1]] = value


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    data = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        set_path(data, path, value)
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a mapping of scenario fields at the top level")
    return data


def load_scenario_dict(data: dict, overrides: Iterable[str] = (), base_dir: Path | None = None) -> Scenario:
    data = apply_overrides(data, overrides)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise validation_error_to_input_error(err) from None
    lengths = scenario.workload.lengths
    if base_dir is not None:
        # File paths in a scenario are relative to the scenario file, not to the shell's directory.
        if hasattr(lengths, "path") and not Path(lengths.path).is_absolute():
            lengths.path = str((base_dir / lengths.path).resolve())
        keyword = scenario.profile in (AUTO, NONE)
        if scenario.profile is not None and not keyword and not Path(scenario.profile).is_absolute():
            scenario.profile = str((base_dir / scenario.profile).resolve())
        model = scenario.model
        if isinstance(model, str) and not Path(model).is_absolute() and (base_dir / model).exists():
            scenario.model = str((base_dir / model).resolve())  # a local model directory or config.json
        for changes in scenario.pools.values():  # a pool's own profile is relative to the file too
            profile = changes.get("profile")
            if isinstance(profile, str) and profile not in (AUTO, NONE) and not Path(profile).is_absolute():
                changes["profile"] = str((base_dir / profile).resolve())
    return scenario


def load_scenario(path: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    path = Path(path)
    return load_scenario_dict(read_yaml(path), overrides, base_dir=path.parent)
