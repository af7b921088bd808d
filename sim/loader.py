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
    value = parse_yaml(raw, f"the value of '{key}'") if raw.strip() else ""
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


MAX_SCENARIO_BYTES = 10_000_000  # a scenario is a page of settings; traces and profiles are separate files
MAX_NESTING = 64  # no scenario field nests deeper than a dozen levels


def read_yaml(path: str | Path) -> dict:
    """A scenario file's mapping. Every way a file can be unreadable -- missing, a directory, not UTF-8, not
    YAML, nested absurdly deep, too large -- is one line naming the file (and line and column for YAML)."""
    path = Path(path)
    try:
        if path.is_dir():
            raise InputError(f"{path} is a directory, not a scenario file")
        if path.stat().st_size > MAX_SCENARIO_BYTES:
            raise InputError(
                f"{path} is larger than {MAX_SCENARIO_BYTES // 1_000_000} MB: not a scenario file"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start}): not a scenario file") from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise InputError(f"cannot read {path!r}: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    data = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a mapping of scenario fields at the top level")
    return data


def parse_yaml(text: str, name: str) -> Any:
    """YAML text to data, or one line: where the parser stopped (line, column) and what it expected."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InputError(f"{name} is not valid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{name} is not valid YAML: {first[:200]}") from None
    except RecursionError:
        raise InputError(f"{name} nests deeper than YAML can be read") from None
    _check_shape(data, name)
    return data


MAX_VALUES = 1_000_000  # values a document may expand to once YAML aliases are followed


def _check_shape(data: Any, name: str) -> None:
    """Refuse a document nested deeper than MAX_NESTING or expanding (through aliases, which PyYAML shares
    rather than copies) to more than MAX_VALUES values -- a 719-byte alias bomb expands to billions -- before
    anything walks it for real. Stops counting at the first limit passed."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, level = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise InputError(
                f"{name} expands to more than {MAX_VALUES:,} values (YAML aliases?): not a scenario"
            )
        if level > MAX_NESTING:
            raise InputError(f"{name} nests deeper than {MAX_NESTING} levels: not a scenario")
        if isinstance(node, dict):
            stack.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, level + 1) for v in node)


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
