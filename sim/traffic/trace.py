"""Read a recorded request trace: CSV or JSONL with arrival_s, input_tokens, output_tokens per request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sim.errors import InputError

_FIELD = "workload.lengths.path"
COLUMNS = ("arrival_s", "input_tokens", "output_tokens")


def read_trace(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arrival_s, prompt_tokens, output_tokens), sorted by arrival time (stable, so ties keep file order)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no such trace file: {path}", _FIELD)
    try:
        if path.suffix.lower() in {".jsonl", ".ndjson"}:
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read trace {path}: {exc}", _FIELD) from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"trace {path} lacks column(s) {', '.join(missing)} (needs {', '.join(COLUMNS)})", _FIELD
        )
    if frame.empty:
        raise InputError(f"trace {path} has no requests", _FIELD)
    try:
        arrival = frame["arrival_s"].astype(float).to_numpy()
        prompt = frame["input_tokens"].astype(float).to_numpy()
        output = frame["output_tokens"].astype(float).to_numpy()
    except (TypeError, ValueError) as exc:
        raise InputError(f"trace {path} has a non-numeric value: {exc}", _FIELD) from None
    for name, values, low in (
        ("arrival_s", arrival, 0),
        ("input_tokens", prompt, 1),
        ("output_tokens", output, 1),
    ):
        bad = ~np.isfinite(values) | (values < low)
        if name != "arrival_s":
            bad |= values != np.round(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise InputError(
                f"trace {path} row {row + 2}: {name}={values[row]!r} must be {'>= 0' if low == 0 else 'an integer >= 1'}",
                _FIELD,
            )
    order = np.argsort(arrival, kind="stable")
    return arrival[order], prompt[order].astype(np.int64), output[order].astype(np.int64)
