"""Which steps to time. Prefill: one sequence of n new tokens. Decode: b sequences at context c.
Grids are capped by the model's max_model_len and (for decode) a KV-cache budget in tokens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from calibrate.store import PointStore, measure_point
from sim.profile import StepSample


@dataclass(frozen=True)
class StepPoint:
    kind: str  # "prefill" or "decode"
    num_tokens: int  # prefill: new tokens; decode: sequences (one token each)
    context: int  # decode: context length before the step; prefill: 0

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.num_tokens}:{self.context}"

    @property
    def num_seqs(self) -> int:
        return 1 if self.kind == "prefill" else self.num_tokens

    @property
    def attention_pairs(self) -> int:
        n = self.num_tokens
        return n * (n + 1) // 2 if self.kind == "prefill" else n * (self.context + 1)

    @property
    def kv_read_tokens(self) -> int:
        return self.num_tokens if self.kind == "prefill" else self.num_tokens * (self.context + 1)

    def sample(self, seconds: float, layers: list[int]) -> StepSample:
        """This point as a profile step sample taking `seconds` at full depth."""
        return StepSample(
            kind=self.kind,
            num_tokens=self.num_tokens,
            num_seqs=self.num_seqs,
            attention_pairs=self.attention_pairs,
            kv_read_tokens=self.kv_read_tokens,
            seconds=seconds,
            layers_measured=layers,
        )


FULL = {
    "prefill": [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192],
    "decode_batch": [1, 2, 4, 8, 16, 32, 64, 128, 256],
    "decode_context": [128, 512, 2048, 8192],
}
QUICK = {"prefill": [16, 64, 256, 1024], "decode_batch": [1, 4, 16], "decode_context": [64, 256, 1024]}


def step_grid(*, quick: bool, max_model_len: int, max_kv_tokens: int) -> list[StepPoint]:
    spec = QUICK if quick else FULL
    points = [StepPoint("prefill", n, 0) for n in spec["prefill"] if n <= max_model_len]
    for c in spec["decode_context"]:
        for b in spec["decode_batch"]:
            if c + 1 <= max_model_len and b * (c + 1) <= max_kv_tokens:
                points.append(StepPoint("decode", b, c))
    return points


def measure_grid(
    grid: list[StepPoint],
    *,
    prefix: str,
    seconds: Callable[[StepPoint], dict],
    layers: list[int],
    store: PointStore,
    point_timeout: float | None,
    skipped: list[str],
    on_point: Callable[[str, str], None],
) -> list[StepSample]:
    """Measure every point (or take its saved record) and return the step samples; `seconds(point)` returns
    a record with the full-depth time under "seconds"."""
    samples = []
    for point in grid:
        key = f"{prefix}:{point.key}"
        record = measure_point(
            store,
            key,
            partial(seconds, point),
            point_timeout=point_timeout,
            skipped=skipped,
            on_point=on_point,
        )
        if record is None:
            continue
        on_point(key, f"{record['seconds'] * 1e3:.2f} ms")
        samples.append(point.sample(record["seconds"], layers))
    return samples
