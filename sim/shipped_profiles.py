"""Shipped calibration profiles, and what `profile: auto` picks.

`profiles/` (beside sim/) holds profiles written by `calibrate`, one file per configuration they price,
named ``<hardware>-<model>[-tp<N>][-<weight dtype>][-kv<kv dtype>].json`` (bfloat16 weights, the model's
own KV dtype and TP1 leave their part out). A scenario's ``profile`` is a path, ``none`` (the datasheet
roofline) or ``auto`` -- the default: the shipped profile of the scenario's (hardware, model, TP, weight
dtype, KV dtype) when one exists and holds step times, else the datasheet roofline. Whichever it is, the
choice is written into the provenance of every output, so a roofline number is never mistaken for a
calibrated one.

Only step-time profiles qualify for ``auto``: a compile-only profile (TPU AOT) changes start-up and stall
times, which a scenario should ask for by path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sim.profile import Profile, load_profile

AUTO = "auto"
NONE = "none"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "profiles"


def profile_file_name(hardware: str, model: str, tp: int, weight_dtype: str, kv_cache_dtype: str) -> str:
    """The file name a profile of this configuration has under profiles/ (calibrate writes it there)."""
    name = f"{hardware}-{model}"
    if tp > 1:
        name += f"-tp{tp}"
    if weight_dtype != "bfloat16":
        name += f"-{weight_dtype}"
    if kv_cache_dtype != "auto":
        name += f"-kv{kv_cache_dtype}"
    return f"{name}.json"


@dataclass(frozen=True)
class ProfileChoice:
    """The profile a scenario runs with (None: the datasheet roofline) and why, for the provenance."""

    path: str | None
    profile: Profile | None
    reason: str


def choose_profile(
    requested: str | None,
    *,
    hardware: str | None,
    model: str,
    tp: int,
    weight_dtype: str,
    kv_cache_dtype: str,
    priced_by_steps: bool,
) -> ProfileChoice:
    """requested: the scenario's `profile` (a resolved path, 'auto', 'none' or None); hardware: the catalog
    name (None for an inline datasheet, which no shipped profile matches); priced_by_steps: whether the
    scenario's cost model takes step times from a profile (a constant step time or measured attention
    kernels do not)."""
    if requested is None or requested == NONE:
        return ProfileChoice(None, None, "none asked for (profile: none): datasheet roofline")
    if requested != AUTO:
        return ProfileChoice(requested, load_profile(requested), f"{requested} (named in the scenario)")
    if not priced_by_steps:
        return ProfileChoice(None, None, "auto: the cost model takes no step-time profile")
    if hardware is None:
        return ProfileChoice(
            None, None, "auto: inline hardware has no shipped profile; steps priced by the datasheet roofline"
        )
    name = profile_file_name(hardware, model, tp, weight_dtype, kv_cache_dtype)
    path = SHIPPED_DIR / name
    if path.is_file():
        profile = load_profile(path)
        if profile.steps is not None:
            return ProfileChoice(str(path), profile, f"auto: shipped profiles/{name}")
    return ProfileChoice(
        None,
        None,
        f"auto: no shipped profile profiles/{name}; steps priced by the datasheet roofline (uncalibrated)",
    )
