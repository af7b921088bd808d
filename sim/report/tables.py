"""Markdown tables for the result folders (sweep.md, variants.md, plan.md): readable in any viewer, diffable."""

from __future__ import annotations

import pandas as pd


def markdown_table(frame: pd.DataFrame, floatfmt: str | None = ".3g") -> str:
    """A GitHub-flavoured table; floats formatted with floatfmt (None: as str())."""
    if frame.empty:
        return "(no rows)\n"

    def cell(value) -> str:
        if floatfmt is not None and isinstance(value, float):
            return "-" if value != value else format(value, floatfmt)
        return str(value)

    rows = [[str(c) for c in frame.columns]] + [
        [cell(v) for v in row] for row in frame.itertuples(index=False)
    ]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("---" for _ in frame.columns) + "|")
    return "\n".join(lines) + "\n"
