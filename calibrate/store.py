"""Measured points, saved one by one as they finish so that a killed run can --resume.

Points are appended to `<profile>.partial.jsonl` (one JSON object per line, flushed and fsynced); a line cut
short by a kill is ignored on resume. The finished profile is written atomically and the partial file
removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class PointStore:
    def __init__(self, profile_path: Path, *, resume: bool):
        self.path = profile_path.with_name(profile_path.name + ".partial.jsonl")
        self.points: dict[str, dict] = {}
        self.resumed = 0
        if resume and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line a kill cut short
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
