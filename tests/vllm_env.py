"""A Python environment with vLLM's CPU build, for the tests that run real vLLM.

vllm-cpu cannot share the test environment: it pulls CUDA builds of torchvision, torchaudio and torchcodec
that break transformers' model imports. So the tests use an environment of its own: the interpreter named
by SERVESIM_VLLM_PYTHON if set, else .cache/vllm-venv in the repository, created on first use (about 1.5
minutes: servesim itself plus vllm-cpu, then the three CUDA builds removed) and reused afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "vllm-venv"
BROKEN_BY_VLLM_CPU = ("torchvision", "torchaudio", "torchcodec")


def vllm_python() -> Path:
    configured = os.environ.get("SERVESIM_VLLM_PYTHON")
    if configured:
        return Path(configured)
    python = VENV / "bin" / "python"
    if not (VENV / ".servesim-ready").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "-e", f"{ROOT}[vllm]"], check=True)
        subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", *BROKEN_BY_VLLM_CPU], check=True)
        (VENV / ".servesim-ready").write_text("ok\n")
    return python
