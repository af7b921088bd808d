"""Result files of one run, written into the output folder: summary.json (built by sim/document.py),
the per-request and time-series tables (CSV or Parquet) and the time-series figure."""

from __future__ import annotations

import json
from pathlib import Path

from sim.document import summary_document
from sim.run import SimulationResult

TABLE_FORMATS = ("csv", "parquet")


def require_table_format(table_format: str) -> None:
    """Fail before a run, not after it, when the chosen table format cannot be written here."""
    if table_format not in TABLE_FORMATS:
        raise ValueError(f"table format must be one of {', '.join(TABLE_FORMATS)}, not {table_format!r}")
    if table_format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError(
                "Parquet tables need pyarrow: pip install 'servesim[parquet]' (or use the default csv)"
            ) from None


def write_table(frame, path_stem: Path, table_format: str) -> Path:
    """One table as CSV (9 significant digits, diff-friendly) or Parquet (columnar, exact, ~10x faster to
    write and read back for a million requests)."""
    path = path_stem.with_suffix("." + table_format)
    if table_format == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, float_format="%.9g")
    return path


def write_results(
    result: SimulationResult,
    out_dir: Path,
    *,
    per_request: bool,
    plot: bool,
    table_format: str = "csv",
    requests_table: bool = True,
) -> list[Path]:
    """Write every result file into out_dir (created); return their paths. requests_table=False skips the
    per-request table (one row per request: the largest file by far)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(summary_document(result, per_request=per_request), indent=2) + "\n")
    paths.append(summary_path)
    if requests_table:
        paths.append(write_table(result.table, out_dir / "requests", table_format))
    paths.append(write_table(result.timeseries, out_dir / "timeseries", table_format))
    if plot:
        from sim.report.plots import plot_timeseries

        paths.append(plot_timeseries(result, out_dir / "timeseries.png"))
    return paths
