"""Measured points, saved one by one as they finish so that a killed run can --resume.

Points are appended to `<profile>.partial.jsonl` (one JSON object per line, flushed and fsynced); a line cut
short by a kill is ignored on resume. The finished profile is written atomically and the partial file
removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from calibrate.timing import PointTimeout, time_limit


class PointStore:
    def __init__(self, profile_path: Path, *, resume: bool):
        self.path = profile_path.with_name(profile_path.name + ".partial.jsonl")
        self.points: dict[str, dict] = {}
        self.resumed = 0
        if resume and self.path.exists():
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line a kill cut short
                if not (
                    isinstance(record, dict)
                    and isinstance(record.get("key"), str)
                    and isinstance(record.get("value"), dict)
                ):
                    continue  # not a saved point (edited, or another tool's line): measured again
                self.points[record["key"]] = record["value"]
            self.resumed = len(self.points)
        elif self.path.exists():
            self.path.unlink()

    def get(self, key: str) -> dict | None:
        return self.points.get(key)

    def put(self, key: str, value: dict) -> None:
        self.points[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": key, "value": value}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def finish(self) -> None:
        if self.path.exists():
            self.path.unlink()


def measure_point(
    store: PointStore,
    key: str,
    measure: Callable[[], dict],
    *,
    point_timeout: float | None,
    skipped: list[str],
    on_point: Callable[[str, str], None],
    failures_are_findings: bool = False,
) -> dict | None:
    """The saved record of `key`, or measure it within the time limit and save it at once.

    A point that times out -- or, with failures_are_findings, that the backend refuses (e.g. XLA out of
    HBM for that shape) -- is noted in `skipped` and returns None; the run goes on."""
    record = store.get(key)
    if record is not None:
        on_point(key, "resumed")
        return record
    try:
        with time_limit(point_timeout):
            record = measure()
    except PointTimeout as exc:
        skipped.append(f"{key} (timed out: {exc})")
        on_point(key, "timed out")
        return None
    except Exception as exc:
        if not failures_are_findings:
            raise
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        skipped.append(f"{key} ({type(exc).__name__}: {reason})")
        on_point(key, f"failed: {reason}")
        return None
    store.put(key, record)
    return record
