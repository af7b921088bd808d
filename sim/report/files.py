"""Result files of one run, written into the output folder.

summary.json follows the seed harness's per-point schema ({metadata, summary, per_request}) so that its
analysis scripts read simulated and measured points alike; servesim adds a `servesim` block with the
resolved configuration and the provenance of every number. Nothing wall-clock goes in, so the same scenario
and seed give byte-identical files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from sim import __version__
from sim.metrics.itl import request_itl
from sim.metrics.summary import good_mask
from sim.run import SimulationResult
from sim.scenario import ArrivalSpec


def _clean(value):
    """JSON has no NaN or inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def metadata(result: SimulationResult) -> dict:
    sc = result.resolved.scenario
    lengths = sc.workload.lengths
    arrivals: ArrivalSpec | None = sc.workload.arrivals
    rate = None if arrivals is None or arrivals.is_instant else float(arrivals.rate)
    return {
        "base_url": None,
        "model": result.resolved.model.name,
        "backend_label": "servesim",
        "hardware_label": sc.hardware if isinstance(sc.hardware, str) else result.resolved.hardware.name,
        "dataset": "sharegpt" if lengths.kind.startswith("sharegpt") else lengths.kind,
        "dataset_path": getattr(lengths, "path", None),
        "num_prompts": result.workload.num_requests,
        "request_rate": rate,
        "burstiness": arrivals.burstiness if arrivals is not None else None,
        "max_concurrency": None,
        "use_chat": False,
        "ignore_eos": sc.workload.ignore_eos,
        "input_len": getattr(lengths, "input_len", None),
        "output_len": getattr(lengths, "output_len", None),
        "fixed_output_len": getattr(lengths, "fixed_output_len", None),
        "seed": result.seed,
        "warmup": 0,
        "warmup_ttft_s": [],
        "cold_start_ttft_s": None,
        "warm_ttft_s": None,
        "timestamp": None,
    }


def servesim_block(result: SimulationResult) -> dict:
    r = result.resolved
    table = result.table
    errors = table.loc[~table["success"], "error"].value_counts().sort_index()
    stats = result.replica_stats
    return {
        "version": __version__,
        "scenario": r.scenario.model_dump(mode="json", by_alias=True),
        "engine": {k: getattr(r.engine, k) for k in r.engine.__slots__},
        "placement": {
            "replicas": r.scenario.fleet.replicas,
            "tensor_parallel_size": r.tp,
            "replicas_per_host": r.replicas_per_host,
            "hosts": r.num_hosts,
            "chips_per_host": r.hardware.chips_per_host,
        },
        "memory": {k: getattr(r.memory, k) for k in r.memory.__slots__},
        "slo": {
            "class": r.slo.name,
            "ttft_ms": r.slo.ttft_ms,
            "tpot_ms": r.slo.tpot_ms,
            "e2e_ms": r.slo.e2e_ms,
        },
        "provenance": {
            "results": f"simulated by servesim {__version__} with the '{result.cost_model_name}' step-cost model",
            "defaults": dict(sorted(r.provenance.items())),
            "cost_model": dict(sorted(result.cost_provenance.items())),
            "workload": result.workload.note,
        },
        "runtime": runtime_block(result),
        "startup": {
            cache: {
                "time_to_ready_s": b.total_s,
                "first_request_s": b.first_request_s,
                "components_s": b.components,
                "provenance": b.provenance,
            }
            for cache, b in result.startup.items()
        },
        "warnings": result.warnings,
        "fleet": fleet_block(result),
        "failures_by_reason": {str(k): int(v) for k, v in errors.items()},
        "num_preemptions": int(table["num_preemptions"].sum()),
        "num_recomputed_tokens": int(table["recomputed_tokens"].sum()),
        "engine_steps": result.num_steps,
        "replicas": [
            {
                "replica": i,
                "engine_steps": s.num_steps,
                "busy_s": s.busy_s,
                "tokens_computed": s.num_tokens,
                "compute_bound_steps": s.compute_bound_steps,
                "peak_kv_blocks": s.peak_kv_blocks,
                "time_split_s": {
                    "compute": s.compute_s,
                    "memory": s.memory_s,
                    "communication": s.communication_s,
                    "overhead": s.overhead_s,
                },
            }
            for i, s in enumerate(stats)
        ],
    }


def fleet_block(result: SimulationResult) -> dict:
    """The fleet's history: replica lives, events, autoscaler decisions, capacity held and its cost."""
    log = dict(result.fleet_log)
    r = result.resolved
    chip_hours = log["replica_seconds"] * r.tp / 3600.0
    log["replica_hours"] = log["replica_seconds"] / 3600.0
    log["chip_hours"] = chip_hours
    price = r.scenario.fleet.usd_per_chip_hour
    if price is not None:
        good = int(good_mask(result.table, r.slo).sum())
        log["cost_usd"] = chip_hours * price
        log["usd_per_1k_good_requests"] = chip_hours * price / good * 1e3 if good else None
        log["price_source"] = f"scenario (fleet.usd_per_chip_hour = {price})"
    return log


def runtime_block(result: SimulationResult) -> dict | None:
    """Padding waste and compile stalls of the run, plus the shapes the runtime used."""
    rt = result.runtime
    if rt is None:
        return None
    stats = result.replica_stats
    tokens = sum(s.num_tokens for s in stats)
    padding = sum(s.padding_tokens for s in stats)
    block = {
        "name": rt.name,
        "tokens_computed": tokens,
        "padding_tokens": padding,
        "padding_frac": padding / (tokens + padding) if tokens + padding else 0.0,
        "compile_stalls": sum(s.compile_stalls for s in stats),
        "compile_stall_s": sum(s.compile_stall_s for s in stats),
    }
    if rt.name == "xla":
        block |= {
            "token_buckets": rt.token_buckets,
            "request_buckets": rt.request_buckets,
            "precompiled_token_buckets": rt.precompiled_tokens,
        }
    else:
        block["cuda_graph_capture_sizes"] = rt.capture_sizes
    return block


def per_request_records(result: SimulationResult) -> list[dict]:
    t = result.table
    out = []
    for req, row in zip(result.requests, t.itertuples(index=False), strict=True):
        out.append(
            {
                "success": bool(row.success),
                "prompt_len": int(row.prompt_tokens),
                "requested_output_len": int(row.requested_output_tokens),
                "generated_tokens": int(row.output_tokens),
                "ttft": row.ttft_s,
                "e2e_latency": row.e2e_s,
                "itl": request_itl(req, result.step_end_s) if row.success else [],
                "tpot": row.tpot_s,
                "error": row.error or None,
                "start_wall": row.arrival_s,
                "end_wall": row.end_s,
            }
        )
    return out


def summary_document(result: SimulationResult, *, per_request: bool) -> dict:
    doc = {"metadata": metadata(result), "summary": result.summary, "servesim": servesim_block(result)}
    if per_request:
        doc["per_request"] = per_request_records(result)
    return _clean(doc)


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
