"""The base of every input schema (scenarios, their fleet-dynamics sections, calibration profiles)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from sim.errors import InputError


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a scenario must never be silently ignored. Infinite and NaN numbers
    are errors too (a field that means "unbounded" says so with a word, as `arrivals.rate: inf` does): a
    `.inf` that reached an integer conversion or an allocation would crash or exhaust the machine."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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


def file_path(value: str) -> str:
    """A path a scenario names: non-empty, no NUL byte (which no file system accepts)."""
    if not value or "\x00" in value:
        raise ValueError("must be a file path (non-empty, without NUL bytes)")
    return value


FilePath = Annotated[str, AfterValidator(file_path)]
