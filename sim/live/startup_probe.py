"""Measure a server's start-up the way the seed harness's startup tool does (docs/references.md#seed-harness).

- Launch `launch_cmd` in its own process session and start the clock just after launch.
- Poll GET {endpoint}{health_path} every 2 s (3 s per poll) until a 2xx, the process exits, or the timeout
  (2400 s): time_to_ready_s, with ~2 s granularity.
- If ready, per shape "in_chars:out_tokens": the prompt is "word " repeated in_chars//5 + 1 times; two
  sequential non-streaming completions (temperature 0, ignore_eos, max_tokens = out); cold = the first E2E,
  warm = the second, compile_overhead_s = max(0, cold - warm).
- Stop the process group afterwards (SIGTERM, then SIGKILL), unless keep_alive.
Run it once after clearing the compile cache and once with the cache kept to measure cold and warm starts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from sim.live.client import check_endpoint

DEFAULT_SHAPES = "128:128,1024:128,1024:1024,4096:256"


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for part in text.split(","):
        chars, _, out = part.strip().partition(":")
        if not (chars.isdigit() and out.isdigit()):
            raise ValueError(f"shape '{part}' is not IN_CHARS:OUT_TOKENS")
        shapes.append((int(chars), int(out)))
    return shapes


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return 200 <= resp.status < 300
    except (OSError, urllib.error.URLError):
        return False


def _complete(endpoint: str, model: str, prompt: str, max_tokens: int, timeout_s: float) -> float:
    body = json.dumps(
        {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "ignore_eos": True}
    ).encode()
    req = urllib.request.Request(
        f"{endpoint}/v1/completions", data=body, headers={"Content-Type": "application/json"}
    )
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        resp.read()
    return time.perf_counter() - start


def _model(endpoint: str) -> str:
    with urllib.request.urlopen(f"{endpoint}/v1/models", timeout=10) as resp:
        return json.loads(resp.read())["data"][0]["id"]


def measure_startup(
    launch_cmd: str,
    endpoint: str,
    *,
    shapes: list[tuple[int, int]],
    health_path: str = "/health",
    poll_s: float = 2.0,
    ready_timeout_s: float = 2400.0,
    request_timeout_s: float = 600.0,
    keep_alive: bool = False,
) -> dict:
    endpoint = check_endpoint(endpoint)
    proc = subprocess.Popen(
        launch_cmd, shell=True, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    start = time.monotonic()
    result: dict[str, Any] = {
        "launch_cmd": launch_cmd,
        "endpoint": endpoint,
        "model": None,
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "time_to_ready_s": None,
        "became_ready": False,
        "shapes": [],
    }
    try:
        while True:
            if _healthy(f"{endpoint}{health_path}"):
                result["became_ready"] = True
                break
            if proc.poll() is not None or time.monotonic() - start > ready_timeout_s:
                break
            time.sleep(poll_s)
        result["time_to_ready_s"] = time.monotonic() - start
        if result["became_ready"]:
            model = _model(endpoint)
            result["model"] = model
            for chars, out in shapes:
                prompt = "word " * (chars // 5 + 1)
                entry: dict[str, Any] = {
                    "shape": f"{chars}:{out}",
                    "input_chars": chars,
                    "output_tokens": out,
                    "cold_e2e_s": None,
                    "warm_e2e_s": None,
                    "compile_overhead_s": None,
                    "cold_ok": False,
                    "warm_ok": False,
                    "err": None,
                }
                try:
                    cold = entry["cold_e2e_s"] = _complete(endpoint, model, prompt, out, request_timeout_s)
                    entry["cold_ok"] = True
                    warm = entry["warm_e2e_s"] = _complete(endpoint, model, prompt, out, request_timeout_s)
                    entry["warm_ok"] = True
                    entry["compile_overhead_s"] = max(0.0, cold - warm)
                except (OSError, urllib.error.URLError) as exc:
                    entry["err"] = f"{type(exc).__name__}: {exc}"[:300]
                result["shapes"].append(entry)
    finally:
        if not keep_alive:
            stop_process_group(proc)
    return result


def stop_process_group(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """SIGTERM the process's whole session, SIGKILL it if it has not exited after grace_s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)
