"""Recorded measurements of real vLLM runs, read into what a replay needs.

A reader turns one kind of published record into ``RecordedRun``s: the scenario that reproduces the run
(model, GPU, TP, engine knobs, the exact requests or the closed loop that sent them), what was measured,
and the simplifications the replay has to make, stated. Two kinds are read:

- LLMServingSim 2.0 bundles (``meta.json`` + ``requests.jsonl`` per run, as in
  ``shared/validation_public/llmservingsim/``): real vLLM runs with every request's queue, first-token and
  last-token times; the run's own arrivals and lengths are replayed as a trace.
- aiconfigurator-core's ``silicon_sample.csv``: `vllm bench serve` measurements by NVIDIA of mean TTFT and
  TPOT per (model, GPU, precision, TP, ISL, OSL, concurrency); replayed as a closed loop of that many
  clients with fixed lengths.

Readers are registered in ``RECORD_READERS``; ``read_records`` asks each whether a path is its kind.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sim import catalog
from sim.errors import InputError

_FIELD = "RECORD"
SILICON_SAMPLE = "silicon-sample"  # the keyword for the installed aiconfigurator-core's silicon_sample.csv
# vLLM 0.19's EngineArgs default (the bundles that do not record it ran with it)
VLLM_019_GPU_MEMORY_UTILIZATION = 0.9
# `vllm bench serve` records do not say how many prompts were sent; closed loops replay this many per client
PROMPTS_PER_CLIENT = 10


@dataclass(frozen=True)
class RecordedRun:
    name: str
    group: str  # runs that share a configuration, for per-group error summaries (e.g. model/GPU/precision)
    measured_by: str  # who measured what, how: a source a reader can open
    scenario: dict  # the scenario that reproduces the run (without its trace file: see `requests`)
    requests: pd.DataFrame | None  # arrival_s, input_tokens, output_tokens of the exact requests, or None
    measured_table: pd.DataFrame | None  # per-request measurements in sim/metrics/requests.py's columns
    measured: dict[str, float]  # summary keys measured directly (when there is no per-request table)
    reference_name: str | None = None  # another simulator's predictions of the same run, if published
    reference: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what the replay simplifies or assumes


class RecordReader(ABC):
    name: str
    describes: str

    @abstractmethod
    def matches(self, path: Path) -> bool: ...

    @abstractmethod
    def read(self, path: Path) -> list[RecordedRun]: ...


# ---- names in records -> catalog ---------------------------------------------------------------------------

_WEIGHT_SUFFIXES = {"fp8": "fp8", "fp4": "nvfp4", "nvfp4": "nvfp4"}
_DROPPED_SUFFIXES = ("instruct", "2507", "chat", "hf")


def catalog_model(model_id: str) -> tuple[str, str]:
    """(catalog model, weight dtype) of a Hugging Face id such as 'nvidia/Llama-3.1-8B-Instruct-FP8'."""
    name = model_id.rsplit("/", 1)[-1].lower()
    weight = "bfloat16"
    changed = True
    while changed:
        changed = False
        for suffix, dtype in _WEIGHT_SUFFIXES.items():
            if name.endswith("-" + suffix):
                name, weight, changed = name[: -len(suffix) - 1], dtype, True
        for suffix in _DROPPED_SUFFIXES:
            if name.endswith("-" + suffix):
                name, changed = name[: -len(suffix) - 1], True
    if name not in catalog.model_entries():
        raise InputError(f"model '{model_id}' is not in the catalog (sim/catalog/models.yaml)", _FIELD)
    return name, weight


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def catalog_hardware(label: str) -> str:
    """The catalog GPU of a record's label: 'RTXPRO6000', 'h100_sxm' (aiconfigurator's system names)."""
    entries = catalog.hardware_entries()
    for name, entry in entries.items():
        if _squash(name) == _squash(label) or entry.get("kernel_tables") == label:
            return name
    raise InputError(f"hardware '{label}' is not in the catalog (sim/catalog/hardware.yaml)", _FIELD)


# ---- LLMServingSim 2.0 bundles ----------------------------------------------------------------------------

_REFERENCE_ROWS = {"TTFT": "ttft_ms", "TPOT": "tpot_ms", "Latency": "e2e_ms"}
_REFERENCE_STATS = {"Mean": "mean", "Median": "median", "P90": "p90", "P95": "p95", "P99": "p99"}


def _bundle_dirs(path: Path) -> list[Path]:
    if (path / "meta.json").is_file() and (path / "requests.jsonl").is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p for p in path.iterdir() if (p / "meta.json").is_file() and (p / "requests.jsonl").is_file()
        )
    return []


def _reference(path: Path) -> dict[str, float]:
    """LLMServingSim's predicted values from its llmservingsim_summary.txt (metric, measured, predicted)."""
    out: dict[str, float] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] in _REFERENCE_ROWS and parts[1] in _REFERENCE_STATS:
            out[f"{_REFERENCE_ROWS[parts[0]]}_{_REFERENCE_STATS[parts[1]]}"] = float(parts[3])
    return out


class LLMServingSimBundles(RecordReader):
    name = "llmservingsim-bundle"
    describes = "a folder of meta.json + requests.jsonl (LLMServingSim 2.0 bundle), or a folder of them"

    def matches(self, path: Path) -> bool:
        return bool(_bundle_dirs(path))

    def read(self, path: Path) -> list[RecordedRun]:
        return [self._read_one(d) for d in _bundle_dirs(path)]

    def _read_one(self, folder: Path) -> RecordedRun:
        try:
            meta = json.loads((folder / "meta.json").read_text())
            frame = pd.read_json(folder / "requests.jsonl", lines=True)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the bundle {folder}: {exc}", _FIELD) from None
        engine_args = meta.get("engine_kwargs", {})
        model, weight_dtype = catalog_model(meta["model"])
        if engine_args.get("dtype") not in (None, "bfloat16", "auto"):
            weight_dtype = str(engine_args["dtype"])
        cluster = folder / "llmservingsim_cluster_config.json"
        label = folder.name.split("_", 1)[0]
        if cluster.is_file():
            nodes = json.loads(cluster.read_text()).get("nodes", [])
            instances = [i for n in nodes for i in n.get("instances", [])]
            label = instances[0].get("hardware", label) if instances else label
        hardware = catalog_hardware(label)
        kv_cache = meta.get("kv_cache") or {}
        notes = [
            "arrivals at the engine's queued_ts (in-process AsyncLLM: no HTTP server; the time from "
            "arrival_time to queueing is outside the measured TTFT and outside the replay)",
            f"measured with vLLM {meta.get('vllm_version', '?')}",
        ]
        engine: dict = {
            "max_num_seqs": engine_args.get("max_num_seqs"),
            "max_num_batched_tokens": engine_args.get("max_num_batched_tokens"),
            "max_model_len": engine_args.get("max_model_len"),
            "kv_cache_dtype": engine_args.get("kv_cache_dtype") or "auto",
            "weight_dtype": weight_dtype,
            "tokenize_s_per_token": 0.0,  # arrivals are the engine's queued_ts: tokenized already
        }
        utilization = kv_cache.get("gpu_memory_utilization")
        if utilization is None:
            utilization = VLLM_019_GPU_MEMORY_UTILIZATION
            notes.append("gpu_memory_utilization not recorded: vLLM 0.19's default 0.9")
        engine["gpu_memory_utilization"] = utilization
        if kv_cache.get("num_gpu_blocks"):
            engine["num_gpu_blocks_override"] = int(kv_cache["num_gpu_blocks"])
            notes.append(f"KV cache: the run's own {kv_cache['num_gpu_blocks']} blocks")
        engine = {k: v for k, v in engine.items() if v is not None}
        tp = int(engine_args.get("tensor_parallel_size") or 1)
        dp = int(engine_args.get("data_parallel_size") or 1)
        fleet: dict = {"replicas": dp, "tensor_parallel_size": tp}
        if dp > 1:
            fleet["router"] = "least_outstanding"
            notes.append(
                f"data parallel {dp}"
                + (" with expert parallelism" if engine_args.get("enable_expert_parallel") else "")
                + f": simulated as {dp} replicas of the whole model at TP{tp} behind a least-outstanding "
                "router; the experts' split over ranks, its all-to-all and the ranks' lockstep steps are not "
                "modelled, and each replica's KV cache is what the whole model leaves free"
            )
        t0 = float(frame["queued_ts"].min())
        requests = pd.DataFrame(
            {
                "arrival_s": frame["queued_ts"] - t0,
                "input_tokens": frame["input_toks"].astype(int),
                "output_tokens": frame["output_toks"].astype(int),
            }
        )
        first = frame["first_token_ts"] - t0
        end = frame["last_token_ts"] - t0
        outputs = frame["output_toks"].to_numpy()
        measured_table = pd.DataFrame(
            {
                "req_id": np.arange(len(frame)),
                "arrival_s": requests["arrival_s"],
                "prompt_tokens": requests["input_tokens"],
                "requested_output_tokens": outputs,
                "output_tokens": outputs,
                "first_token_s": first,
                "end_s": end,
                "ttft_s": first - requests["arrival_s"],
                "tpot_s": (end - first) / np.maximum(1, outputs - 1),
                "e2e_s": end - requests["arrival_s"],
                "success": np.ones(len(frame), dtype=bool),
                "error": [""] * len(frame),
            }
        )
        reference = _reference(folder / "llmservingsim_summary.txt")
        scenario = {
            "name": folder.name,
            "model": model,
            "hardware": hardware,
            "engine": engine,
            "fleet": fleet,
        }
        return RecordedRun(
            name=folder.name,
            group=f"{model} on {hardware}",
            measured_by=f"real vLLM run published by LLMServingSim 2.0 ({folder}/meta.json, requests.jsonl)",
            scenario=scenario,
            requests=requests,
            measured_table=measured_table,
            measured={},
            reference_name="LLMServingSim 2.0" if reference else None,
            reference=reference,
            notes=tuple(notes),
        )


# ---- aiconfigurator-core silicon_sample.csv ---------------------------------------------------------------


def silicon_sample_path() -> Path:
    try:
        import aiconfigurator_core
    except ImportError:
        raise InputError(
            "the silicon sample ships with aiconfigurator-core: pip install 'servesim[gpu-data]'", _FIELD
        ) from None
    return Path(aiconfigurator_core.__file__).parent / "systems" / "silicon_sample.csv"


class SiliconSample(RecordReader):
    name = "silicon-sample"
    describes = (
        f"'{SILICON_SAMPLE}' (the installed aiconfigurator-core's silicon_sample.csv) or a path to such a CSV"
    )

    def matches(self, path: Path) -> bool:
        return str(path) == SILICON_SAMPLE or (path.is_file() and path.name.endswith("silicon_sample.csv"))

    def read(self, path: Path) -> list[RecordedRun]:
        source = silicon_sample_path() if str(path) == SILICON_SAMPLE else path
        frame = pd.read_csv(source)
        rows = frame[(frame["backend"] == "vllm") & (frame["mode"] == "agg")]
        runs = []
        for row in rows.itertuples(index=False):
            run = self._row(row, source)
            if run is not None:
                runs.append(run)
        if not runs:
            raise InputError(f"{source} holds no vLLM aggregated rows of catalog dense models", _FIELD)
        return runs

    def _row(self, row, source: Path) -> RecordedRun | None:
        try:
            model, _ = catalog_model(row.model_path)
            hardware = catalog_hardware(row.system)
        except InputError:
            return None
        if catalog.model_entries()[model].get("num_experts"):
            return None  # dense models only (MoE rows need expert-parallel layouts the replay lacks)
        precision = row.precision if isinstance(row.precision, str) else "bfloat16"
        weight_dtype = {"fp8": "fp8", "fp4": "nvfp4", "bfloat16": "bfloat16", "bf16": "bfloat16"}.get(
            precision
        )
        if weight_dtype is None:
            return None
        clients = int(row.batch_size)
        isl, osl, tp = int(row.isl), int(row.osl), int(row.tp_size)
        version = row.backend_version if isinstance(row.backend_version, str) else "not recorded"
        scenario = {
            "name": str(row.id),
            "model": model,
            "hardware": hardware,
            "engine": {"max_model_len": isl + osl + 16, "weight_dtype": weight_dtype},
            "fleet": {"tensor_parallel_size": tp},
            "workload": {
                "lengths": {"kind": "fixed", "input_len": isl, "output_len": osl},
                "arrivals": {"rate": "inf"},
                "max_concurrency": clients,
                "request_timeout_s": 36000,
            },
            "num_requests": PROMPTS_PER_CLIENT * clients,
        }
        return RecordedRun(
            name=str(row.id),
            group=f"{model} {weight_dtype} on {hardware}",
            measured_by=f"NVIDIA's vllm bench serve measurement in aiconfigurator-core's {source.name} "
            f"({row.silicon_data_source})",
            scenario=scenario,
            requests=None,
            measured_table=None,
            measured={"ttft_ms_mean": float(row.silicon_ttft_ms), "tpot_ms_mean": float(row.silicon_tpot_ms)},
            notes=(
                f"closed loop of {clients} clients, ISL {isl}, OSL {osl}, TP{tp}",
                f"number of prompts not recorded: {PROMPTS_PER_CLIENT} per client assumed",
                "engine knobs not recorded: vLLM's defaults for the GPU",
                f"vLLM version {version}",
                "silicon_ttft_ms / silicon_tpot_ms read as the run's mean TTFT / TPOT",
            ),
        )


RECORD_READERS: dict[str, RecordReader] = {r.name: r for r in (LLMServingSimBundles(), SiliconSample())}


def read_records(path: Path) -> list[RecordedRun]:
    for reader in RECORD_READERS.values():
        if reader.matches(path):
            return reader.read(path)
    kinds = "; ".join(r.describes for r in RECORD_READERS.values())
    raise InputError(f"{path} is no recorded run servesim reads (it reads {kinds})", _FIELD)
