"""Step cost from a calibration profile: the fitted model of measured step times.

Inside the measured range the fit answers (its held-out error is in the profile). Beyond it -- a step with
more tokens, more KV traffic or more sequences than any measured -- a fit would extrapolate blindly, so the
roofline takes over, scaled by the ratio fit / roofline at the edge of the measured range along the same
direction; a warning says how often that happened.

The torch method times the model's forward pass only; vLLM adds host work to every step (scheduling,
sampling, detokenising, streaming), so `engine_overhead_s` is added on top of such a profile's fit.
"""

from __future__ import annotations

from collections import deque

from sim.cost.base import StepBatch, StepCost
from sim.profile import Profile


class ProfiledStepCost:
    name = "profile"

    def __init__(
        self, profile: Profile, roofline, profile_path: str, engine_overhead_s: float, overhead_source: str
    ):
        steps = profile.steps
        self.fit = steps.fit
        self.roofline = roofline
        self.overhead_s = engine_overhead_s if steps.provenance.tool == "torch" else 0.0
        self.tp = roofline.tp
        c = self.fit.coefficients
        self._intercept = self.fit.intercept_s
        self._per_token, self._per_pair = c["num_tokens"], c["attention_pairs"]
        self._per_kv, self._per_seq = c["kv_read_tokens"], c["num_seqs"]
        self._max_tokens, self._max_kv, self._max_seqs = (
            self.fit.max_num_tokens,
            self.fit.max_kv_read_tokens,
            self.fit.max_num_seqs,
        )
        self.num_extrapolated_steps = 0
        self._extrapolated: deque[bool] = deque(maxlen=8192)  # per priced step, newest last (for retract)
        # Per-request work outside engine steps (HTTP, tokenisation): the fleet delays each request by it.
        self.api_overhead_s = profile.api_overhead_s or 0.0
        q = self.fit.quality
        p = steps.provenance
        self.provenance = {
            "step_times": (
                f"fitted to {len(steps.samples)} steps measured by calibrate ({p.tool}, {p.method}) on "
                f"{p.device_kind}, {p.date}; held-out R^2 {q.r2:.4f}, p95 error {q.p95_rel_residual:.1%} "
                f"({profile_path})"
            ),
            "beyond_measured_range": "roofline scaled to the fit at the edge of the measured range",
            "api_overhead_s": (
                f"{self.api_overhead_s} per request, measured by calibrate against a live server"
                if self.api_overhead_s
                else "none in the profile"
            ),
            "engine_overhead_s": (
                f"{self.overhead_s} per step ({overhead_source})"
                if self.overhead_s
                else "included in the measured steps"
            ),
        }

    def _fit(self, tokens: float, pairs: float, kv: float, seqs: float) -> float:
        return (
            self._intercept
            + self._per_token * tokens
            + self._per_pair * pairs
            + self._per_kv * kv
            + self._per_seq * seqs
        )

    def components(
        self, batch: StepBatch, padding_tokens: int, padding_seqs: int
    ) -> tuple[float, float, float]:
        tokens, pairs, kv = batch.work()
        rows = tokens + padding_tokens
        seqs = batch.num_decode_seqs + len(batch.prefill_new_tokens) + padding_seqs
        scale = min(1.0, self._max_tokens / rows, self._max_seqs / seqs, self._max_kv / kv if kv else 1.0)
        self._extrapolated.append(scale < 1.0)
        if scale >= 1.0:
            seconds = self._fit(rows, pairs, kv, seqs)
        else:
            self.num_extrapolated_steps += 1
            edge = self._fit(rows * scale, pairs * scale * scale, kv * scale, seqs * scale)
            roof_edge = max(
                self.roofline.time_from_features(
                    rows * scale, pairs * scale * scale, kv * scale, seqs * scale
                )
            )
            roof = max(self.roofline.time_from_features(rows, pairs, kv, seqs))
            seconds = roof * edge / roof_edge
        return seconds, 0.0, self.roofline.communication_s(rows)

    def forget_last_steps(self, n: int) -> None:
        """Undo the counts of the last n priced steps (event skipping priced them and did not take them)."""
        for _ in range(n):
            if self._extrapolated.pop():
                self.num_extrapolated_steps -= 1

    def step_cost(self, batch: StepBatch) -> StepCost:
        compute_s, memory_s, comm_s = self.components(batch, batch.num_padding_tokens, batch.num_padding_seqs)
        return StepCost(
            compute_s + comm_s + self.overhead_s,
            compute_s,
            memory_s,
            comm_s,
            self.overhead_s,
            0.0,
            batch.num_padding_tokens,
        )
