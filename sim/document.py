"""summary.json: the one builder of a run's result document (docs/metrics.md defines every key).

It follows the seed harness's per-point schema ({metadata, summary, per_request}) so that its analysis
scripts read simulated and measured points alike; servesim adds a `servesim` block with the resolved
configuration, the provenance of every number, the runtime's waste, the fleet's history and its cost.
Nothing wall-clock goes in, so the same scenario and seed give byte-identical documents. Writers (console,
files, report pages, sweeps, studies) read these values; none computes a metric of its own.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np

from sim import __version__
from sim.metrics.cost import fleet_cost
from sim.metrics.itl import request_itl
from sim.run import SimulationResult
from sim.runtime.settings import CudaSettings, XlaSettings
from sim.traffic.spec import ArrivalSpec, FixedLengths, RandomLengths, ShareGPTFileLengths, TraceLengths


def json_safe(value):
    """JSON has no NaN or inf: write them as null (recursively; numpy scalars become Python numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value


def metadata(result: SimulationResult) -> dict:
    r = result.resolved
    lengths = r.workload.spec.lengths
    arrivals: ArrivalSpec | None = r.workload.spec.arrivals
    rate = None if arrivals is None or arrivals.rate == "inf" else float(arrivals.rate)
    sized = lengths if isinstance(lengths, FixedLengths | RandomLengths) else None
    return {
        "base_url": None,
        "model": r.model.name,
        "backend_label": "servesim",
        "hardware_label": r.hardware_name,
        "dataset": "sharegpt" if lengths.kind.startswith("sharegpt") else lengths.kind,
        "dataset_path": lengths.path if isinstance(lengths, ShareGPTFileLengths | TraceLengths) else None,
        "num_prompts": result.workload.num_requests,
        "request_rate": rate,
        "burstiness": arrivals.burstiness if arrivals is not None else None,
        "max_concurrency": None,
        "use_chat": False,
        "ignore_eos": r.workload.spec.ignore_eos,
        "input_len": sized.input_len if sized is not None else None,
        "output_len": sized.output_len if sized is not None else None,
        "fixed_output_len": lengths.fixed_output_len if isinstance(lengths, ShareGPTFileLengths) else None,
        "seed": result.seed,
        "warmup": 0,
        "warmup_ttft_s": [],
        "cold_start_ttft_s": None,
        "warm_ttft_s": None,
        "timestamp": None,
    }


def provenance_block(result: SimulationResult) -> dict:
    """The one provenance map of the resolved configuration, grouped by section, plus what produced the
    results and the workload."""
    grouped: dict[str, dict[str, str]] = {}
    for key, value in sorted(result.resolved.provenance.items()):
        section, _, name = key.partition(".")
        if name:
            grouped.setdefault(section, {})[name] = value
        else:
            grouped.setdefault("inputs", {})[section] = value
    return {
        "results": f"simulated by servesim {__version__} with the '{result.cost_model_name}' step-cost model",
        "step_times": result.resolved.step_times,
        **grouped,
        "workload": result.workload.note,
    }


def runtime_block(result: SimulationResult) -> dict | None:
    """Padding waste and compile stalls of the run, plus the shapes the runtime used."""
    rt = result.runtime
    if rt is None:
        return None
    stats = result.replica_stats
    tokens = sum(s.num_tokens for s in stats)
    padding = int(sum(s.totals["padding_tokens"] for s in stats))
    block: dict = {
        "name": rt.name,
        "tokens_computed": tokens,
        "padding_tokens": padding,
        "padding_frac": padding / (tokens + padding) if tokens + padding else 0.0,
        "compile_stalls": sum(s.compile_stalls for s in stats),
        "compile_stall_s": sum(s.totals["compile_stall_s"] for s in stats),
    }
    if isinstance(rt, XlaSettings):
        block |= {
            "token_buckets": rt.token_buckets,
            "request_buckets": rt.request_buckets,
            "precompiled_token_buckets": rt.precompiled_tokens,
        }
    elif isinstance(rt, CudaSettings):
        block["cuda_graph_capture_sizes"] = rt.capture_sizes
    return block


def fleet_block(result: SimulationResult) -> dict:
    """The fleet's history: replica lives, events, autoscaler decisions, capacity held and its cost."""
    log = dict(result.fleet_log)
    price = result.resolved.fleet.usd_per_chip_hour
    cost = fleet_cost(log, result.resolved.tp, price, result.summary["good_requests"])
    log |= cost.as_dict()
    if "pools" in log:
        priced = [f"{p['pool']} {p['usd_per_chip_hour']}" for p in log["pools"] if p["usd_per_chip_hour"]]
        log["price_source"] = (
            f"scenario (fleet.usd_per_chip_hour per pool: {', '.join(priced)})" if priced else None
        )
    else:
        log["price_source"] = f"scenario (fleet.usd_per_chip_hour = {price})" if price is not None else None
    return log


def servesim_block(result: SimulationResult) -> dict:
    r = result.resolved
    table = result.table
    errors = table.loc[~table["success"], "error"].value_counts().sort_index()
    return {
        "version": __version__,
        "scenario": r.scenario.model_dump(mode="json", by_alias=True),
        "engine": asdict(r.engine),
        "placement": {
            "replicas": r.fleet.replicas,
            "tensor_parallel_size": r.tp,
            "replicas_per_host": r.replicas_per_host,
            "hosts": r.num_hosts,
            "chips_per_host": r.hardware.chips_per_host,
        },
        "memory": asdict(r.memory),
        "slo": {
            "class": r.slo.name,
            "ttft_ms": r.slo.ttft_ms,
            "tpot_ms": r.slo.tpot_ms,
            "e2e_ms": r.slo.e2e_ms,
        },
        "provenance": provenance_block(result),
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
                    "compute": s.totals["compute_s"],
                    "memory": s.totals["memory_s"],
                    "communication": s.totals["communication_s"],
                    "overhead": s.totals["overhead_s"],
                    "compile_stall": s.totals["compile_stall_s"],
                },
            }
            for i, s in enumerate(result.replica_stats)
        ],
    }


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
                "itl": request_itl(req.segments, result.step_end_s[req.replica_id]) if row.success else [],
                "tpot": row.tpot_s,
                "error": row.error or None,
                "start_wall": row.arrival_s,
                "end_wall": row.end_s,
            }
        )
    return out


def summary_document(result: SimulationResult, *, per_request: bool = False) -> dict:
    """The whole summary.json of a run."""
    doc: dict[str, object] = {
        "metadata": metadata(result),
        "summary": result.summary,
        "servesim": servesim_block(result),
    }
    if per_request:
        doc["per_request"] = per_request_records(result)
    return json_safe(doc)
