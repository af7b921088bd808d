"""The base of every input schema (scenarios, their fleet-dynamics sections, calibration profiles)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from sim.errors import InputError


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a scenario must never be silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _format_location(loc: tuple) -> str:
    """Pydantic adds union-member tags ('fixed', 'str', ...) to paths; keep only the user's field names."""
    parts = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            continue
        if item in {"str", "int", "float", "bool", "constrained-str", "literal['inf']"} or item.startswith(
            ("function-", "literal[")
        ):
            continue
        if (
            item
            in {
                "ModelArchitecture",
                "HardwareSpec",
                "fixed",
                "random",
                "lognormal",
                "sharegpt_like",
                "sharegpt_file",
                "trace",
                "roofline",
                "constant",
            }
            and parts
        ):
            continue
        parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "scenario"


def validation_error_to_input_error(err: ValidationError) -> InputError:
    """Report the most specific pydantic error as field: message: the one that reached deepest into the
    input (for a value that may be a name or a mapping, the mapping's own problem rather than "should be a
    string"), the first of those."""
    errors = err.errors()
    first = max(errors, key=lambda e: len(e["loc"]))
    message = first["msg"].removeprefix("Value error, ")
    extra = len(errors) - 1
    if extra:
        message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return InputError(message, _format_location(tuple(first["loc"])))
