"""Reports: result files of each command (summary.json, tables as CSV or Parquet, figures), the console
tables, and report.html pages (pages.py, html.py)."""
