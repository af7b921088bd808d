"""Reports of a run: result files (summary.json, requests.csv, timeseries.csv/png) and the console table."""
